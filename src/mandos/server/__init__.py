"""The mandos server daemon."""
