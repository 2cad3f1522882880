"""mandos-ctl: the command-line client of the Mandos server's D-Bus API."""
