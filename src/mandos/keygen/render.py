"""Pure text for mandos-keygen: key-type words, the gpg parameter file, the clients.conf section.

Nothing here touches a file, a process or the clock.  Key types use gpg's own Key-Type words
(RSA, DSA, ECDSA, EDDSA for the primary key; RSA, ELG, ECDH for the subkey, see gpg(1) "Unattended
key generation") plus curve names (ed25519, cv25519, nistp256, ...) as shorthands.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Final

from mandos.core.errors import UsageError
from mandos.core.values import Fingerprint, KeyId

#: The smallest --length/--sublength the reference accepts.
MIN_KEY_LENGTH: Final = 512

#: word (upper-cased) -> (gpg Key-Type, curve or None for a sized key); primary, sign+auth.
PRIMARY_TYPES: Final[dict[str, tuple[str, str | None]]] = {
    "RSA": ("RSA", None),
    "1": ("RSA", None),
    "DSA": ("DSA", None),
    "17": ("DSA", None),
    "EDDSA": ("EDDSA", "ed25519"),
    "22": ("EDDSA", "ed25519"),
    "ED25519": ("EDDSA", "ed25519"),
    "ECDSA": ("ECDSA", "nistp256"),
    "19": ("ECDSA", "nistp256"),
    "NISTP256": ("ECDSA", "nistp256"),
    "NISTP384": ("ECDSA", "nistp384"),
    "NISTP521": ("ECDSA", "nistp521"),
    "BRAINPOOLP256R1": ("ECDSA", "brainpoolP256r1"),
    "BRAINPOOLP384R1": ("ECDSA", "brainpoolP384r1"),
    "BRAINPOOLP512R1": ("ECDSA", "brainpoolP512r1"),
}

#: word (upper-cased) -> (gpg Subkey-Type, curve or None); the encryption subkey.
SUBKEY_TYPES: Final[dict[str, tuple[str, str | None]]] = {
    "RSA": ("RSA", None),
    "1": ("RSA", None),
    "ELG": ("ELG", None),
    "ELG-E": ("ELG", None),
    "16": ("ELG", None),
    "ECDH": ("ECDH", "cv25519"),
    "18": ("ECDH", "cv25519"),
    "CV25519": ("ECDH", "cv25519"),
    "NISTP256": ("ECDH", "nistp256"),
    "NISTP384": ("ECDH", "nistp384"),
    "NISTP521": ("ECDH", "nistp521"),
    "BRAINPOOLP256R1": ("ECDH", "brainpoolP256r1"),
    "BRAINPOOLP384R1": ("ECDH", "brainpoolP384r1"),
    "BRAINPOOLP512R1": ("ECDH", "brainpoolP512r1"),
}

#: TLS key types we can make (the Mandos priority string only allows these).
TLS_KEY_TYPES: Final = ("ed25519",)

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
_CRC = re.compile(r"=[A-Za-z0-9+/]{4}")


def parse_key_type(raw: str, table: dict[str, tuple[str, str | None]], option: str) -> str:
    """The canonical table word for RAW (any case); UsageError lists the accepted words."""
    word = raw.strip().upper()
    if word not in table:
        names = ", ".join(w for w in table if not w.isdigit())
        raise UsageError(f"{option}: unknown key type {raw!r} (use one of {names})")
    return word


def parse_key_length(raw: str, option: str) -> int:
    """A key length in bits, at least MIN_KEY_LENGTH as in the reference."""
    try:
        bits = int(raw, 10)
    except ValueError:
        raise UsageError(f"{option}: {raw!r} is not a number of bits") from None
    if bits < MIN_KEY_LENGTH:
        raise UsageError(f"{option}: invalid key length {bits} (minimum {MIN_KEY_LENGTH})")
    return bits


def parse_tls_key_type(raw: str) -> str:
    """The TLS key type in lower case; UsageError names the supported set."""
    word = raw.strip().lower()
    if word not in TLS_KEY_TYPES:
        supported = ", ".join(TLS_KEY_TYPES)
        raise UsageError(f"--tls-keytype: unsupported TLS key type {raw!r} (use {supported})")
    return word


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What OpenPGP key to generate; the type words are keys of PRIMARY_TYPES/SUBKEY_TYPES."""

    name: str
    key_type: str = "RSA"
    key_length: int = 4096
    subkey_type: str = "RSA"
    subkey_length: int = 4096
    email: str = ""
    comment: str = ""
    expire: str = "0"

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise UsageError("empty key name")
        for label, value in (
            ("--name", self.name),
            ("--email", self.email),
            ("--comment", self.comment),
            ("--expire", self.expire),
        ):
            if _UNSAFE.search(value):
                raise UsageError(f"{label}: control characters are not allowed")
        if "(" in self.comment or ")" in self.comment:
            raise UsageError("--comment: parentheses are not allowed")
        if "<" in self.email or ">" in self.email:
            raise UsageError("--email: angle brackets are not allowed")


def user_id(name: str, comment: str = "", email: str = "") -> str:
    """The OpenPGP user ID gpg builds: NAME[ (COMMENT)][ <EMAIL>]."""
    text = name
    if comment:
        text += f" ({comment})"
    if email:
        text += f" <{email}>"
    return text


def armor_comment(spec: KeySpec) -> str:
    """The 'Comment:' armour header of pubkey.txt and seckey.txt."""
    return "Mandos client key for " + user_id(spec.name, spec.comment, spec.email)


def gpg_parameters(spec: KeySpec) -> str:
    """A gpg --gen-key parameter file: sign+auth primary key, encryption subkey, no passphrase."""
    key_algo, key_curve = PRIMARY_TYPES[spec.key_type]
    sub_algo, sub_curve = SUBKEY_TYPES[spec.subkey_type]
    lines = ["%no-protection", f"Key-Type: {key_algo}"]
    lines.append(f"Key-Curve: {key_curve}" if key_curve else f"Key-Length: {spec.key_length}")
    lines += ["Key-Usage: sign,auth", f"Subkey-Type: {sub_algo}"]
    lines.append(
        f"Subkey-Curve: {sub_curve}" if sub_curve else f"Subkey-Length: {spec.subkey_length}"
    )
    lines += ["Subkey-Usage: encrypt", f"Name-Real: {spec.name}"]
    if spec.comment:
        lines.append(f"Name-Comment: {spec.comment}")
    if spec.email:
        lines.append(f"Name-Email: {spec.email}")
    lines += [f"Expire-Date: {spec.expire or '0'}", "%commit", ""]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class SshKey:
    """A host key as ssh-keyscan prints it after the host name: TYPE BASE64."""

    key_type: str
    key_b64: str

    def __str__(self) -> str:
        return f"{self.key_type} {self.key_b64}"


def parse_keyscan(output: str, host: str) -> SshKey | None:
    """The first 'HOST TYPE BASE64' line of ssh-keyscan output, or None."""
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == host and not line.startswith("#"):
            return SshKey(fields[1], fields[2])
    return None


def message_body_lines(message: bytes, width: int = 64) -> list[str]:
    """The radix-64 lines of an OpenPGP message: binary, or armoured (headers and CRC dropped)."""
    if not message.lstrip().startswith(b"-----BEGIN PGP MESSAGE-----"):
        encoded = base64.b64encode(message).decode("ascii")
        return [encoded[i : i + width] for i in range(0, len(encoded), width)]
    body: list[str] = []
    state = "armour"  # armour line, then headers up to the blank line, then the body
    for raw in message.decode("ascii", "replace").splitlines():
        line = raw.strip()
        if state == "armour":
            state = "headers" if line.startswith("-----BEGIN") else state
        elif state == "headers":
            state = "body" if not line else state
        elif line.startswith("-----END"):
            break
        elif line and not _CRC.fullmatch(line):
            body.append(line)
    return body


def client_section(
    name: str,
    fingerprint: Fingerprint,
    message: bytes,
    *,
    key_id: KeyId | None,
    host: str | None = None,
    ssh: SshKey | None = None,
) -> str:
    """The clients.conf section mandos-keygen --password prints, ending in a newline."""
    lines = [f"[{name}]", f"host = {host if host is not None else name}"]
    if key_id is not None:
        lines.append(f"key_id = {str(key_id).lower()}")
    lines += [f"fingerprint = {fingerprint}", "secret ="]
    lines += ["    " + ln for ln in message_body_lines(message)]
    if ssh is not None:
        lines.append(
            f"checker = ssh-keyscan -t {ssh.key_type} %%(host)s 2>/dev/null"
            " | grep --fixed-strings --line-regexp --quiet"
            ' --regexp=%%(host)s" %(ssh_fingerprint)s"'
        )
        lines.append(f"ssh_fingerprint = {ssh}")
    return "\n".join(lines) + "\n"
