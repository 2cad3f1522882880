"""Validated, normalised value types: identifiers compare with plain ``==`` once parsed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from mandos.core.errors import ConfigError

_HEX_DIGITS: Final = frozenset("0123456789ABCDEF")


def _normalise_hex(raw: str) -> str:
    """Upper-case and drop whitespace, as the reference compares key IDs and fingerprints."""
    return "".join(raw.split()).upper()


@dataclass(frozen=True, slots=True)
class KeyId:
    """SHA-256 of a TLS public key's DER SubjectPublicKeyInfo, as 64 upper-case hex digits."""

    hex: str

    def __post_init__(self) -> None:
        if len(self.hex) != 64 or not set(self.hex) <= _HEX_DIGITS:
            raise ConfigError(f"{self.hex!r} is not a key ID (64 hex digits)")

    @classmethod
    def parse(cls, raw: str) -> KeyId:
        """Parse a key ID written in any case and with any spacing."""
        return cls(_normalise_hex(raw))

    @classmethod
    def from_spki_der(cls, der: bytes) -> KeyId:
        """The key ID of a DER-encoded SubjectPublicKeyInfo."""
        # Imported here: hashlib loads OpenSSL's libcrypto (3.4 MiB of the client's RSS), and
        # the client, which never computes a key ID, imports this module.
        import hashlib

        return cls(hashlib.sha256(der).hexdigest().upper())

    def __str__(self) -> str:
        return self.hex


#: SHA-256 of the empty string: every Mandos 1.8.0 client reported it; never matched.
EMPTY_KEY_ID: Final = KeyId("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """An OpenPGP v4 fingerprint, as 40 upper-case hex digits."""

    hex: str

    def __post_init__(self) -> None:
        if len(self.hex) != 40 or not set(self.hex) <= _HEX_DIGITS:
            raise ConfigError(f"{self.hex!r} is not an OpenPGP fingerprint (40 hex digits)")

    @classmethod
    def parse(cls, raw: str) -> Fingerprint:
        """Parse a fingerprint written in any case and with any spacing."""
        return cls(_normalise_hex(raw))

    def __str__(self) -> str:
        return self.hex


class Secret:
    """Opaque secret bytes that never print themselves."""

    __slots__ = ("_b",)

    def __init__(self, data: bytes) -> None:
        self._b = bytes(data)

    def reveal(self) -> bytes:
        """The raw bytes; call only where they are sent or stored encrypted."""
        return self._b

    def __len__(self) -> int:
        return len(self._b)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._b == self._b

    def __hash__(self) -> int:
        return hash(self._b)

    def __repr__(self) -> str:
        return f"Secret(<{len(self._b)} bytes>)"

    __str__ = __repr__


_D_BUS_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True, slots=True)
class ClientName:
    """A client's name: its clients.conf section name."""

    value: str

    def __post_init__(self) -> None:
        if not self.value or self.value != self.value.strip() or "\n" in self.value:
            raise ConfigError(f"{self.value!r} is not a valid client name")

    def dbus_path(self) -> str:
        """The object path /clients/<name>, with '.' and '-' (and anything unsafe) as '_'."""
        return "/clients/" + _D_BUS_UNSAFE.sub("_", self.value)

    def __str__(self) -> str:
        return self.value
