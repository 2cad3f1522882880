"""Fixtures for end-to-end tests of our server: client keys and a protocol client."""

from __future__ import annotations

import asyncio
import base64
import socket
from dataclasses import dataclass

import pytest

from mandos.adapters.gnutls.keys import generate_ed25519_keypair, public_key_id
from mandos.adapters.gnutls.session import RawKeyCredentials
from mandos.client.session import AttemptFailed, Timeouts, fetch_encrypted_secret
from mandos.core.config import DEFAULT_PRIORITY


@dataclass(frozen=True)
class TLSKey:
    """One client's Ed25519 TLS key pair and its key ID."""

    private_pem: bytes
    public_pem: bytes

    @property
    def key_id(self) -> str:
        return str(public_key_id(self.public_pem))

    def credentials(self) -> RawKeyCredentials:
        return RawKeyCredentials.from_pem(self.public_pem, self.private_pem)


@pytest.fixture
def tls_key() -> TLSKey:
    return TLSKey(*generate_ed25519_keypair())


def client_section(name: str, key: TLSKey, secret: bytes, **options: str) -> str:
    """A clients.conf section for ``key`` whose (already encrypted) secret is ``secret``."""
    options.setdefault("host", "127.0.0.1")
    lines = [f"[{name}]", f"key_id = {key.key_id}"]
    lines.append("secret = " + base64.b64encode(secret).decode())
    lines += [f"{k} = {v}" for k, v in options.items()]
    return "\n".join(lines) + "\n"


def fetch(host: str, port: int, key: TLSKey, *, receive_timeout: float = 20) -> bytes | None:
    """Run one protocol exchange; the bytes sent, or None if refused (zero bytes)."""

    async def attempt() -> bytes | None:
        with key.credentials() as credentials:
            try:
                return await fetch_encrypted_secret(
                    socket.AF_INET6 if ":" in host else socket.AF_INET,
                    (host, port),
                    DEFAULT_PRIORITY,
                    credentials,
                    Timeouts(receive=receive_timeout),
                )
            except AttemptFailed as exc:
                if exc.refused:
                    return None
                raise

    return asyncio.run(attempt())
