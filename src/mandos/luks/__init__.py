"""mandos-luks: bind LUKS volumes to Mandos, rotate their keys, unbind them."""
