"""The Mandos system in Python: unattended unlocking of encrypted root file systems."""

__version__ = "0.1.0"
