"""The four key files both mandos-keygens write, as mandos-client options."""

from __future__ import annotations

from pathlib import Path


def client_key_args(keydir: Path) -> list[str]:
    """``--pubkey``, ``--seckey``, ``--tls-pubkey`` and ``--tls-privkey`` for ``keydir``."""
    return [
        f"--pubkey={keydir / 'pubkey.txt'}",
        f"--seckey={keydir / 'seckey.txt'}",
        f"--tls-pubkey={keydir / 'tls-pubkey.pem'}",
        f"--tls-privkey={keydir / 'tls-privkey.pem'}",
    ]
