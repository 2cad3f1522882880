"""mandos-keygen's pure text: key-type words, gpg parameters, the clients.conf section."""

from __future__ import annotations

import base64
import configparser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mandos.core.errors import UsageError
from mandos.core.values import Fingerprint, KeyId
from mandos.keygen import render

FPR = Fingerprint.parse("9813A43A93BFB9F0A7F699D27B036B0F4DCDAB6F")
KID = KeyId.parse("5F4BD64C3299C797ED07D594BD5574981415B3A1C9D44C793B788607BE18B677")


def _crc24(data: bytes) -> int:
    """RFC 4880 6.1 CRC-24, to build armour the way gpg does."""
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armour(message: bytes) -> bytes:
    body = base64.b64encode(message).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    crc = base64.b64encode(_crc24(message).to_bytes(3, "big")).decode()
    text = "\n".join(
        ["-----BEGIN PGP MESSAGE-----", "Comment: x", "", *lines, f"={crc}",
         "-----END PGP MESSAGE-----", ""]
    )  # fmt: skip
    return text.encode()


@pytest.mark.parametrize(
    ("raw", "table", "word"),
    [
        ("rsa", render.PRIMARY_TYPES, "RSA"),
        ("EdDSA", render.PRIMARY_TYPES, "EDDSA"),
        ("ed25519", render.PRIMARY_TYPES, "ED25519"),
        ("22", render.PRIMARY_TYPES, "22"),
        ("ECDH", render.SUBKEY_TYPES, "ECDH"),
        ("cv25519", render.SUBKEY_TYPES, "CV25519"),
        ("elg-e", render.SUBKEY_TYPES, "ELG-E"),
    ],
)
def test_key_type_words(raw: str, table: dict[str, tuple[str, str | None]], word: str) -> None:
    assert render.parse_key_type(raw, table, "--type") == word


def test_unknown_key_type_lists_choices() -> None:
    with pytest.raises(UsageError, match=r"--subtype: unknown key type 'ed25519' \(use one of"):
        render.parse_key_type("ed25519", render.SUBKEY_TYPES, "--subtype")


@pytest.mark.parametrize(("raw", "ok"), [("512", True), ("4096", True), ("511", False),
                                         ("abc", False), ("", False), ("-1", False)])  # fmt: skip
def test_key_length(raw: str, ok: bool) -> None:
    if ok:
        assert render.parse_key_length(raw, "--length") == int(raw)
    else:
        with pytest.raises(UsageError, match="--length"):
            render.parse_key_length(raw, "--length")


def test_tls_key_type() -> None:
    assert render.parse_tls_key_type("Ed25519") == "ed25519"
    with pytest.raises(UsageError, match=r"unsupported TLS key type 'rsa' \(use ed25519\)"):
        render.parse_tls_key_type("rsa")


def test_gpg_parameters_rsa() -> None:
    spec = render.KeySpec(name="host.example", email="root@host", comment="test", expire="2y")
    assert render.gpg_parameters(spec).splitlines() == [
        "%no-protection",
        "Key-Type: RSA",
        "Key-Length: 4096",
        "Key-Usage: sign,auth",
        "Subkey-Type: RSA",
        "Subkey-Length: 4096",
        "Subkey-Usage: encrypt",
        "Name-Real: host.example",
        "Name-Comment: test",
        "Name-Email: root@host",
        "Expire-Date: 2y",
        "%commit",
    ]


def test_gpg_parameters_curves() -> None:
    spec = render.KeySpec(name="h", key_type="ED25519", subkey_type="CV25519")
    lines = render.gpg_parameters(spec).splitlines()
    assert "Key-Type: EDDSA" in lines
    assert "Key-Curve: ed25519" in lines
    assert "Subkey-Type: ECDH" in lines
    assert "Subkey-Curve: cv25519" in lines
    assert not [ln for ln in lines if "Length" in ln or "Name-Comment" in ln]


@pytest.mark.parametrize(
    "fields",
    [{"name": ""}, {"name": "a\nKey-Type: DSA"}, {"name": "h", "comment": "a(b)"},
     {"name": "h", "email": "<a@b>"}, {"name": "h", "expire": "0\n%commit"}],
)  # fmt: skip
def test_spec_refuses_injection(fields: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        render.KeySpec(
            name=fields["name"],
            comment=fields.get("comment", ""),
            email=fields.get("email", ""),
            expire=fields.get("expire", "0"),
        )


def test_user_id_and_armor_comment() -> None:
    assert render.user_id("n") == "n"
    assert render.user_id("n", "c", "e@x") == "n (c) <e@x>"
    spec = render.KeySpec(name="host1", comment="my comment", email="a@b.c")
    assert render.armor_comment(spec) == "Mandos client key for host1 (my comment) <a@b.c>"


def test_parse_keyscan() -> None:
    out = "# localhost:22 SSH-2.0-OpenSSH_9.2\nlocalhost ssh-ed25519 AAAAC3Nz\n"
    key = render.parse_keyscan(out, "localhost")
    assert key == render.SshKey("ssh-ed25519", "AAAAC3Nz")
    assert str(key) == "ssh-ed25519 AAAAC3Nz"
    assert render.parse_keyscan("", "localhost") is None
    assert render.parse_keyscan("otherhost ssh-rsa AAAA\n", "localhost") is None


@given(
    st.builds(
        bytes.__add__,
        st.binary(min_size=1, max_size=1).map(lambda b: bytes([b[0] | 0x80])),
        st.binary(max_size=2000),
    )
)
def test_armour_and_binary_give_the_same_lines(message: bytes) -> None:
    """Any binary OpenPGP message (its first byte has bit 7 set, RFC 4880 4.2)."""
    lines = render.message_body_lines(message)
    assert all(len(ln) <= 64 for ln in lines)
    assert base64.b64decode("".join(lines)) == message
    assert render.message_body_lines(armour(message)) == lines


def test_section_layout_matches_reference() -> None:
    message = bytes(range(256)) * 2
    text = render.client_section("vm", FPR, message, key_id=KID)
    lines = text.splitlines()
    assert lines[:5] == [
        "[vm]",
        "host = vm",
        "key_id = 5f4bd64c3299c797ed07d594bd5574981415b3a1c9d44c793b788607be18b677",
        "fingerprint = 9813A43A93BFB9F0A7F699D27B036B0F4DCDAB6F",
        "secret =",
    ]
    assert all(ln.startswith("    ") and len(ln) <= 68 for ln in lines[5:])
    assert text.endswith("\n")
    assert not text.endswith("\n\n")


def test_section_parses_and_decodes() -> None:
    message = b"\x85\x02\x0c" + bytes(range(200))
    ssh = render.SshKey("ecdsa-sha2-nistp256", "AAAAE2VjZHNh")
    text = render.client_section("host.example", FPR, message, key_id=KID, ssh=ssh)
    parser = configparser.ConfigParser()
    parser.read_string(text)
    section = parser["host.example"]
    assert base64.b64decode(section["secret"]) == message
    assert KeyId.parse(section["key_id"]) == KID
    assert section["host"] == "host.example"
    assert section["ssh_fingerprint"] == "ecdsa-sha2-nistp256 AAAAE2VjZHNh"
    assert section["checker"] == (
        "ssh-keyscan -t ecdsa-sha2-nistp256 %(host)s 2>/dev/null | grep --fixed-strings"
        ' --line-regexp --quiet --regexp=%(host)s" ecdsa-sha2-nistp256 AAAAE2VjZHNh"'
    )


def test_section_without_key_id() -> None:
    text = render.client_section("old", FPR, b"x", key_id=None, host="old.example")
    assert "key_id" not in text
    assert "host = old.example" in text
