"""mandos-doctor: check every link of a client's unattended unlock."""
