"""mandos-monitor: a live terminal view of a Mandos server's clients and events."""
