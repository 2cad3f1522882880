"""plugin-runner: the crypttab keyscript that races the password plugins (REFERENCE A13)."""
