"""Fixtures for mandos-client tests: key files on disk (TLS and OpenPGP), reaped gpg agents."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mandos.adapters.gnutls import generate_ed25519_keypair, public_key_id
from mandos.core.values import KeyId
from tests.client.peer import PgpKey, make_pgp_key


@dataclass(frozen=True)
class KeySet:
    """Every key file mandos-client reads, and the args that point it at them."""

    pgp: PgpKey
    tls_pubkey: Path
    tls_privkey: Path
    key_id: KeyId
    hook_dir: Path

    def args(self, *, pgp: PgpKey | None = None) -> list[str]:
        chosen = pgp or self.pgp
        return [
            f"--pubkey={chosen.pubkey}",
            f"--seckey={chosen.seckey}",
            f"--tls-pubkey={self.tls_pubkey}",
            f"--tls-privkey={self.tls_privkey}",
            f"--network-hook-dir={self.hook_dir}",
            "--interface=none",  # never bring up or take down the host's interfaces
        ]


@pytest.fixture(scope="session")
def pgp_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PgpKey]]:
    base = tmp_path_factory.mktemp("pgp")
    keys: dict[str, PgpKey] = {}
    try:
        keys["main"] = make_pgp_key(base / "main")
        keys["other"] = make_pgp_key(base / "other")
        keys["multi"] = make_pgp_key(base / "multi", encryption_subkeys=3)
        keys["future"] = make_pgp_key(base / "future", faked_time="20380101T000000!")
        keys["protected"] = make_pgp_key(base / "protected", passphrase="sesame")
        yield keys
    finally:
        for key in keys.values():
            key.kill_agent()


@pytest.fixture(scope="session")
def keyset(tmp_path_factory: pytest.TempPathFactory, pgp_keys: dict[str, PgpKey]) -> KeySet:
    base = tmp_path_factory.mktemp("tls")
    priv, pub = generate_ed25519_keypair()
    (base / "tls-privkey.pem").write_bytes(priv)
    (base / "tls-pubkey.pem").write_bytes(pub)
    (base / "hooks").mkdir()
    return KeySet(
        pgp_keys["main"],
        base / "tls-pubkey.pem",
        base / "tls-privkey.pem",
        public_key_id(pub),
        base / "hooks",
    )
