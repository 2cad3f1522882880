"""Validated, normalised value types: identifiers compare with plain ``==`` once parsed."""

from __future__ import annotations

from mandos.core.errors import ConfigError
from mandos.core.frozen import Frozen

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from typing import Final


def _normalise_hex(raw: str) -> str:
    """Upper-case and drop whitespace, as the reference compares key IDs and fingerprints."""
    joined = "".join(raw.split())
    upper = joined.upper()
    return joined if upper == joined else upper  # already normal: the same string (memory)


def _is_hex(text: str, digits: int) -> bool:
    """``text`` is ``digits`` upper-case hexadecimal digits (not a ``set()``: 10,000 clients
    have 20,000 IDs, and a set of 64 characters takes 1 us)."""
    if len(text) != digits or text.upper() != text:
        return False
    try:  # fromhex takes nothing but hex digit pairs and blanks, and blanks would give fewer
        return len(bytes.fromhex(text)) * 2 == digits
    except ValueError:
        return False


class KeyId(Frozen):
    """SHA-256 of a TLS public key's DER SubjectPublicKeyInfo, as 64 upper-case hex digits."""

    __slots__ = ("hex",)
    __match_args__ = ("hex",)
    hex: str

    def __init__(self, hex: str) -> None:
        if not _is_hex(hex, 64):
            raise ConfigError(f"{hex!r} is not a key ID (64 hex digits)")
        self._init(hex=hex)

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

        key = cls.__new__(cls)  # a digest's upper-case hex needs no check: once per connection
        key._init(hex=hashlib.sha256(der).hexdigest().upper())
        return key

    # Frozen's, for the one field: the server looks a key ID up once per connection.
    def __eq__(self, other: object) -> bool:
        if other.__class__ is not KeyId:
            return NotImplemented
        assert isinstance(other, KeyId)
        return self.hex == other.hex

    def __hash__(self) -> int:
        return hash(self.hex)

    def __str__(self) -> str:
        return self.hex


#: SHA-256 of the empty string: every Mandos 1.8.0 client reported it; never matched.
EMPTY_KEY_ID: Final = KeyId("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")


class Fingerprint(Frozen):
    """An OpenPGP v4 fingerprint, as 40 upper-case hex digits."""

    __slots__ = ("hex",)
    __match_args__ = ("hex",)
    hex: str

    def __init__(self, hex: str) -> None:
        if not _is_hex(hex, 40):
            raise ConfigError(f"{hex!r} is not an OpenPGP fingerprint (40 hex digits)")
        self._init(hex=hex)

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


#: What a D-Bus object path element may hold; not a regular expression: re is ~0.3 MiB of the
#: client's RSS, and the client imports this module.
_D_BUS_SAFE: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


class ClientName(Frozen):
    """A client's name: its clients.conf section name."""

    __slots__ = ("value",)
    __match_args__ = ("value",)
    value: str

    def __init__(self, value: str) -> None:
        if not value or value != value.strip() or "\n" in value:
            raise ConfigError(f"{value!r} is not a valid client name")
        self._init(value=value)

    def dbus_path(self) -> str:
        """The object path /clients/<name>, with '.' and '-' (and anything unsafe) as '_'."""
        return "/clients/" + "".join(c if c in _D_BUS_SAFE else "_" for c in self.value)

    def __str__(self) -> str:
        return self.value
