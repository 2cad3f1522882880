"""mandos-keygen: make a Mandos client's key files and its clients.conf section."""
