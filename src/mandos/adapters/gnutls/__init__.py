"""GnuTLS through ctypes: Ed25519 raw-public-key sessions in both Mandos roles, and key tools."""

# The server's DEFAULT_PRIORITY lives in core.config, which the client does not import (it
# brings datetime into the initramfs); the client has its own (client/args.py).

from mandos.adapters.gnutls.keys import (
    generate_ed25519_keypair,
    private_key_id,
    public_key_from_private,
    public_key_id,
)
from mandos.adapters.gnutls.session import RawKeyCredentials, Session

__all__ = [
    "RawKeyCredentials",
    "Session",
    "generate_ed25519_keypair",
    "private_key_id",
    "public_key_from_private",
    "public_key_id",
]
