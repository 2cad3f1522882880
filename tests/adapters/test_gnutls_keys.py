"""Ed25519 key generation and key IDs, checked against Debian's certtool."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest

from mandos.adapters.gnutls import (
    generate_ed25519_keypair,
    private_key_id,
    public_key_from_private,
    public_key_id,
)
from mandos.core.errors import KeyFileError
from mandos.core.values import KeyId


def _certtool(*args: str) -> str:
    result = subprocess.run(
        ["certtool", *args], capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout


@pytest.fixture(scope="module")
def keypair() -> tuple[bytes, bytes]:
    return generate_ed25519_keypair()


@pytest.fixture
def key_files(tmp_path: Path, keypair: tuple[bytes, bytes]) -> tuple[Path, Path]:
    priv, pub = tmp_path / "tls-privkey.pem", tmp_path / "tls-pubkey.pem"
    priv.write_bytes(keypair[0])
    pub.write_bytes(keypair[1])
    return priv, pub


def _der(pem: bytes) -> bytes:
    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    return base64.b64decode(body)


def test_generated_pems_have_the_certtool_shapes(keypair: tuple[bytes, bytes]) -> None:
    priv, pub = keypair
    assert priv.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert pub.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert len(_der(pub)) == 44  # Ed25519 SubjectPublicKeyInfo


def test_each_generation_gives_a_new_key() -> None:
    assert generate_ed25519_keypair()[1] != generate_ed25519_keypair()[1]


def test_certtool_reads_the_private_key(key_files: tuple[Path, Path]) -> None:
    info = _certtool("--key-info", "--infile", str(key_files[0]))
    assert "Ed25519" in info


def test_certtool_derives_the_same_public_key(
    key_files: tuple[Path, Path], keypair: tuple[bytes, bytes]
) -> None:
    out = _certtool("--pubkey-info", "--load-privkey", str(key_files[0]))
    pem = out[out.index("-----BEGIN PUBLIC KEY-----") :].encode()
    assert _der(pem) == _der(keypair[1])


def test_key_id_matches_certtool(
    key_files: tuple[Path, Path], keypair: tuple[bytes, bytes]
) -> None:
    out = _certtool("--key-id", "--hash=sha256", "--load-pubkey", str(key_files[1]))
    expected = KeyId.parse(out.strip())
    assert public_key_id(keypair[1]) == expected
    assert private_key_id(keypair[0]) == expected
    assert expected == KeyId.from_spki_der(_der(keypair[1]))


def test_public_key_from_private(keypair: tuple[bytes, bytes]) -> None:
    assert public_key_from_private(keypair[0]) == keypair[1]


@pytest.mark.parametrize("password_args", [["--null-password"], ["--empty-password"]])
def test_reads_keys_made_by_certtool(tmp_path: Path, password_args: list[str]) -> None:
    priv = tmp_path / "key.pem"
    _certtool(
        "--generate-privkey",
        "--key-type=ed25519",
        "--sec-param=ultra",
        "--pkcs8",
        *password_args,
        "--outfile",
        str(priv),
    )
    pub = _certtool("--pubkey-info", "--load-privkey", str(priv))
    pub_pem = pub[pub.index("-----BEGIN PUBLIC KEY-----") :].encode()
    assert private_key_id(priv.read_bytes()) == public_key_id(pub_pem)


_SECRETISH = "MC4CAQAwBQYDK2VwBCIEIDstVAfacDOgA65DhgBM5XNvV8JsTjPC6WoTVoL96Ot6"
_MALFORMED = [
    b"",
    b"not a key at all",
    b"-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
    b"-----BEGIN PRIVATE KEY-----\n" + _SECRETISH[:40].encode() + b"\n-----END PRIVATE KEY-----\n",
    b"-----BEGIN PRIVATE KEY-----\n" + _SECRETISH.encode() + b"\n",
    b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
]


@pytest.mark.parametrize("data", _MALFORMED)
def test_malformed_private_key_is_a_key_file_error(data: bytes) -> None:
    with pytest.raises(KeyFileError) as info:
        private_key_id(data)
    assert _SECRETISH[:20] not in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(hashlib.sha256().digest()) + b"\n",
    ],
)
def test_malformed_public_key_is_a_key_file_error(data: bytes) -> None:
    with pytest.raises(KeyFileError, match="public key"):
        public_key_id(data)


def test_a_private_key_is_not_a_public_key(keypair: tuple[bytes, bytes]) -> None:
    with pytest.raises(KeyFileError):
        public_key_id(keypair[0])
