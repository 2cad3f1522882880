"""Ed25519 TLS keys: generate them, and compute the Mandos key ID, with GnuTLS itself.

The files match what Debian's ``certtool --key-type=ed25519 --pkcs8`` and ``--pubkey-info``
write: an unencrypted PKCS#8 "PRIVATE KEY" PEM and a SubjectPublicKeyInfo "PUBLIC KEY" PEM.
The key ID is gnutls_pubkey_get_key_id(GNUTLS_KEYID_USE_SHA256), i.e. SHA-256 of the DER SPKI.
GnuTLS's errors about a key become one ``KeyFileError`` here, named after the key (``name``:
a file name where the caller has one); callers do not wrap it again. Error messages never
contain key bytes.
"""

from __future__ import annotations

import ctypes
from ctypes import c_size_t, c_ubyte, c_void_p

from mandos.adapters.gnutls import _ffi
from mandos.core.errors import KeyFileError, TLSError
from mandos.core.values import KeyId

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

_KEY_ID_SIZE = 32  # SHA-256


class _Handle:  # not contextlib: it imports functools and collections (client RSS)
    """``with``: an initialised GnuTLS object handle, released on exit."""

    def __init__(self, init: Callable[..., int], deinit: Callable[..., None]) -> None:
        self._init, self._deinit = init, deinit

    def __enter__(self) -> c_void_p:
        self._handle = c_void_p()
        self._init(ctypes.byref(self._handle))
        return self._handle

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._deinit(self._handle)


def _pubkey() -> _Handle:
    return _Handle(_ffi.gnutls_pubkey_init, _ffi.gnutls_pubkey_deinit)


def _privkey() -> _Handle:
    return _Handle(_ffi.gnutls_privkey_init, _ffi.gnutls_privkey_deinit)


def _key_id(pubkey: c_void_p) -> KeyId:
    out = (c_ubyte * _KEY_ID_SIZE)()
    size = c_size_t(_KEY_ID_SIZE)
    _ffi.gnutls_pubkey_get_key_id(pubkey, _ffi.KEYID_USE_SHA256, out, ctypes.byref(size))
    return KeyId(bytes(out[: size.value]).hex().upper())


def _import_privkey(privkey: c_void_p, privkey_pem: bytes, name: str) -> None:
    """Load a PEM private key (PKCS#8 or legacy) into a gnutls_privkey_t."""
    if b"-----BEGIN" not in privkey_pem:
        raise KeyFileError(f"{name}: no PEM data found")
    try:
        with _ffi.InDatum(privkey_pem) as datum:
            _ffi.gnutls_privkey_import_x509_raw(privkey, datum, _ffi.X509_FMT_PEM, None, 0)
    except TLSError as exc:
        raise KeyFileError(f"{name}: cannot be read: {exc}") from exc


def _import_pubkey(pubkey: c_void_p, pubkey_pem: bytes, name: str) -> None:
    if b"-----BEGIN" not in pubkey_pem:
        raise KeyFileError(f"{name}: no PEM data found")
    try:
        with _ffi.InDatum(pubkey_pem) as datum:
            _ffi.gnutls_pubkey_import(pubkey, datum, _ffi.X509_FMT_PEM)
    except TLSError as exc:
        raise KeyFileError(f"{name}: cannot be read: {exc}") from exc


def generate_ed25519_keypair() -> tuple[bytes, bytes]:
    """A fresh Ed25519 key: (PKCS#8 private key PEM, SubjectPublicKeyInfo public key PEM)."""
    bits = _ffi.gnutls_sec_param_to_pk_bits(_ffi.PK_EDDSA_ED25519, _ffi.SEC_PARAM_ULTRA)
    with _Handle(_ffi.gnutls_x509_privkey_init, _ffi.gnutls_x509_privkey_deinit) as x509key:
        _ffi.gnutls_x509_privkey_generate(x509key, _ffi.PK_EDDSA_ED25519, bits, 0)
        out = _ffi.Datum()
        _ffi.gnutls_x509_privkey_export2_pkcs8(
            x509key, _ffi.X509_FMT_PEM, None, _ffi.PKCS_PLAIN, ctypes.byref(out)
        )
        private_pem = _ffi.take_datum(out)
    return private_pem, public_key_from_private(private_pem)


def public_key_from_private(privkey_pem: bytes, name: str = "private key") -> bytes:
    """The SubjectPublicKeyInfo PEM ("PUBLIC KEY") of a PEM private key."""
    with _privkey() as privkey, _pubkey() as pubkey:
        _import_privkey(privkey, privkey_pem, name)
        _ffi.gnutls_pubkey_import_privkey(pubkey, privkey, 0, 0)
        out = _ffi.Datum()
        _ffi.gnutls_pubkey_export2(pubkey, _ffi.X509_FMT_PEM, ctypes.byref(out))
        return _ffi.take_datum(out)


def public_key_id(pubkey_pem: bytes, name: str = "public key") -> KeyId:
    """The Mandos key ID of a PEM public key (SHA-256 of its DER SubjectPublicKeyInfo)."""
    with _pubkey() as pubkey:
        _import_pubkey(pubkey, pubkey_pem, name)
        return _key_id(pubkey)


def private_key_id(privkey_pem: bytes, name: str = "private key") -> KeyId:
    """The Mandos key ID of the public half of a PEM private key."""
    with _privkey() as privkey, _pubkey() as pubkey:
        _import_privkey(privkey, privkey_pem, name)
        _ffi.gnutls_pubkey_import_privkey(pubkey, privkey, 0, 0)
        return _key_id(pubkey)
