"""GnuTLS through ctypes: Ed25519 raw-public-key sessions in both Mandos roles, and key tools."""

from mandos.adapters.gnutls.keys import (
    generate_ed25519_keypair,
    private_key_id,
    public_key_from_private,
    public_key_id,
)
from mandos.adapters.gnutls.session import RawKeyCredentials, Session
from mandos.core.config import DEFAULT_PRIORITY

__all__ = [
    "DEFAULT_PRIORITY",
    "RawKeyCredentials",
    "Session",
    "generate_ed25519_keypair",
    "private_key_id",
    "public_key_from_private",
    "public_key_id",
]
