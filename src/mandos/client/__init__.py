"""mandos-client: the initramfs program that fetches the password from a Mandos server."""
