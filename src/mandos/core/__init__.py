"""The pure core: protocol, configuration and client state, with no I/O and no clock."""
