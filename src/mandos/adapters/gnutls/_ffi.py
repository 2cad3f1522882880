"""ctypes prototypes for the system libgnutls.so.30, and the one place error codes become TLSError.

Rules of this module:
1. Only prototypes, constants and the datum helpers live here; no policy.
2. Functions that can never return GNUTLS_E_AGAIN have an errcheck that raises ``TLSError``.
   The record-layer and handshake functions return the raw code; callers test ``would_block(rc)``
   first and hand anything else negative to ``error(rc)``.
3. A datum GnuTLS allocates is copied to ``bytes`` and released with ``gnutls_free`` at once.
"""

from __future__ import annotations

import ctypes
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char_p,
    c_int,
    c_size_t,
    c_ssize_t,
    c_ubyte,
    c_uint,
    c_void_p,
)

from mandos.adapters import lazylog
from mandos.core.errors import TLSError

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:  # collections.abc imports collections (~0.3 MiB of the client's RSS)
    from collections.abc import Callable
    from typing import Any, Final

LIBRARY: Final = "libgnutls.so.30"

# gnutls_init() flags (gnutls.h, gnutls_init_flags_t)
SERVER: Final = 1
CLIENT: Final = 1 << 1
NONBLOCK: Final = 1 << 3
NO_SIGNAL: Final = 1 << 6
NO_TICKETS: Final = 1 << 10
ENABLE_RAWPK: Final = 1 << 18

# Error codes (gnutls.h)
E_SUCCESS: Final = 0
E_FATAL_ALERT_RECEIVED: Final = -12
E_WARNING_ALERT_RECEIVED: Final = -16
E_AGAIN: Final = -28
E_REHANDSHAKE: Final = -37
E_CERTIFICATE_ERROR: Final = -43
E_INTERRUPTED: Final = -52
E_PREMATURE_TERMINATION: Final = -110

CRD_CERTIFICATE: Final = 1
SHUT_RDWR: Final = 0
X509_FMT_DER: Final = 0
X509_FMT_PEM: Final = 1
CRT_X509: Final = 1
CRT_RAWPK: Final = 3
CTYPE_PEERS: Final = 3
PK_DH: Final = 3
PK_EDDSA_ED25519: Final = 7
SEC_PARAM_ULTRA: Final = 45
PKCS_PLAIN: Final = 1
KEYID_USE_SHA256: Final = 1 << 0


class Datum(Structure):
    """gnutls_datum_t: a pointer and an unsigned length."""

    _fields_ = (("data", POINTER(c_ubyte)), ("size", c_uint))


class InDatum:
    """A datum over a private copy of some bytes, wiped when closed (used for key material)."""

    __slots__ = ("_buf", "datum")

    def __init__(self, data: bytes) -> None:
        self._buf = ctypes.create_string_buffer(data, len(data))
        self.datum = Datum(ctypes.cast(self._buf, POINTER(c_ubyte)), len(data))

    def __enter__(self) -> Datum:
        return self.datum

    def __exit__(self, *exc: object) -> None:
        ctypes.memset(self._buf, 0, len(self._buf))


lib: Final = ctypes.CDLL(LIBRARY)
_free: Final = CFUNCTYPE(None, c_void_p).in_dll(lib, "gnutls_free")


def take_datum(datum: Datum) -> bytes:
    """Copy a datum GnuTLS allocated into bytes, then release its memory."""
    try:
        return ctypes.string_at(datum.data, datum.size) if datum.data else b""
    finally:
        if datum.data:
            _free(ctypes.cast(datum.data, c_void_p))
            datum.data = None
            datum.size = 0


def error_name(code: int) -> str:
    """The symbolic name of an error code, e.g. 'GNUTLS_E_AGAIN'."""
    raw = gnutls_strerror_name(code)
    return raw.decode() if raw else f"GNUTLS_E_{-code}"


def error(code: int, cls: type[TLSError] = TLSError, prefix: str = "") -> TLSError:
    """The exception for a negative GnuTLS code (returned, so the caller raises it)."""
    raw = gnutls_strerror(code)
    text = raw.decode(errors="replace") if raw else "unknown error"
    return cls(code, error_name(code), f"{prefix}{text} ({error_name(code)})")


def would_block(code: int) -> bool:
    """Whether a code means 'call again when the socket is ready' (E_AGAIN, E_INTERRUPTED)."""
    return code in (E_AGAIN, E_INTERRUPTED)


def _errcheck(result: int, _func: Any, _args: tuple[Any, ...]) -> int:
    if result < 0:
        raise error(result)
    return result


def _fn(
    name: str, restype: Any, argtypes: tuple[Any, ...], *, checked: bool = False
) -> Callable[..., Any]:
    """Declare one prototype; ``checked`` ones raise TLSError on a negative result."""
    func = getattr(lib, name)
    func.restype = restype
    func.argtypes = argtypes
    if checked:
        func.errcheck = _errcheck
    return func  # type: ignore[no-any-return]


_P = POINTER(c_void_p)
_D = POINTER(Datum)

# --- global ---
gnutls_global_init = _fn("gnutls_global_init", c_int, (), checked=True)
gnutls_check_version = _fn("gnutls_check_version", c_char_p, (c_char_p,))
gnutls_strerror = _fn("gnutls_strerror", c_char_p, (c_int,))
gnutls_strerror_name = _fn("gnutls_strerror_name", c_char_p, (c_int,))
gnutls_error_is_fatal = _fn("gnutls_error_is_fatal", c_int, (c_int,))
LogFunc = CFUNCTYPE(None, c_int, c_char_p)
gnutls_global_set_log_function = _fn("gnutls_global_set_log_function", None, (LogFunc,))
gnutls_global_set_log_level = _fn("gnutls_global_set_log_level", None, (c_int,))

# --- session ---
gnutls_init = _fn("gnutls_init", c_int, (_P, c_uint), checked=True)
gnutls_deinit = _fn("gnutls_deinit", None, (c_void_p,))
gnutls_priority_init = _fn("gnutls_priority_init", c_int, (_P, c_char_p, POINTER(c_char_p)))
gnutls_priority_set = _fn("gnutls_priority_set", c_int, (c_void_p, c_void_p), checked=True)
gnutls_credentials_set = _fn(
    "gnutls_credentials_set", c_int, (c_void_p, c_int, c_void_p), checked=True
)
gnutls_transport_set_int2 = _fn("gnutls_transport_set_int2", None, (c_void_p, c_int, c_int))
gnutls_handshake_set_timeout = _fn("gnutls_handshake_set_timeout", None, (c_void_p, c_uint))
gnutls_handshake = _fn("gnutls_handshake", c_int, (c_void_p,))
gnutls_record_get_direction = _fn("gnutls_record_get_direction", c_int, (c_void_p,))
gnutls_record_recv = _fn("gnutls_record_recv", c_ssize_t, (c_void_p, c_void_p, c_size_t))
gnutls_record_send = _fn("gnutls_record_send", c_ssize_t, (c_void_p, c_char_p, c_size_t))
gnutls_bye = _fn("gnutls_bye", c_int, (c_void_p, c_int))
gnutls_alert_get = _fn("gnutls_alert_get", c_int, (c_void_p,))
gnutls_alert_get_name = _fn("gnutls_alert_get_name", c_char_p, (c_int,))
gnutls_certificate_type_get2 = _fn("gnutls_certificate_type_get2", c_int, (c_void_p, c_int))
gnutls_certificate_type_get_name = _fn("gnutls_certificate_type_get_name", c_char_p, (c_int,))
gnutls_certificate_get_peers = _fn("gnutls_certificate_get_peers", _D, (c_void_p, POINTER(c_uint)))
gnutls_protocol_get_version = _fn("gnutls_protocol_get_version", c_int, (c_void_p,))
gnutls_protocol_get_name = _fn("gnutls_protocol_get_name", c_char_p, (c_int,))
gnutls_cipher_get = _fn("gnutls_cipher_get", c_int, (c_void_p,))
gnutls_cipher_get_name = _fn("gnutls_cipher_get_name", c_char_p, (c_int,))

# --- credentials ---
gnutls_certificate_allocate_credentials = _fn(
    "gnutls_certificate_allocate_credentials", c_int, (_P,), checked=True
)
gnutls_certificate_free_credentials = _fn("gnutls_certificate_free_credentials", None, (c_void_p,))
gnutls_certificate_set_rawpk_key_mem = _fn(
    "gnutls_certificate_set_rawpk_key_mem",
    c_int,
    (c_void_p, _D, _D, c_int, c_char_p, c_uint, POINTER(c_char_p), c_uint, c_uint),
    checked=True,
)
gnutls_certificate_set_known_dh_params = _fn(
    "gnutls_certificate_set_known_dh_params", c_int, (c_void_p, c_int), checked=True
)
gnutls_certificate_set_dh_params = _fn(
    "gnutls_certificate_set_dh_params", None, (c_void_p, c_void_p)
)
gnutls_dh_params_init = _fn("gnutls_dh_params_init", c_int, (_P,), checked=True)
gnutls_dh_params_deinit = _fn("gnutls_dh_params_deinit", None, (c_void_p,))
gnutls_dh_params_import_pkcs3 = _fn(
    "gnutls_dh_params_import_pkcs3", c_int, (c_void_p, _D, c_int), checked=True
)
gnutls_pk_bits_to_sec_param = _fn("gnutls_pk_bits_to_sec_param", c_int, (c_int, c_uint))
gnutls_sec_param_to_pk_bits = _fn("gnutls_sec_param_to_pk_bits", c_uint, (c_int, c_int))

# --- keys ---
gnutls_x509_privkey_init = _fn("gnutls_x509_privkey_init", c_int, (_P,), checked=True)
gnutls_x509_privkey_deinit = _fn("gnutls_x509_privkey_deinit", None, (c_void_p,))
gnutls_x509_privkey_generate = _fn(
    "gnutls_x509_privkey_generate", c_int, (c_void_p, c_int, c_uint, c_uint), checked=True
)
gnutls_x509_privkey_export2_pkcs8 = _fn(
    "gnutls_x509_privkey_export2_pkcs8",
    c_int,
    (c_void_p, c_int, c_char_p, c_uint, _D),
    checked=True,
)
gnutls_privkey_init = _fn("gnutls_privkey_init", c_int, (_P,), checked=True)
gnutls_privkey_deinit = _fn("gnutls_privkey_deinit", None, (c_void_p,))
gnutls_privkey_import_x509_raw = _fn(
    "gnutls_privkey_import_x509_raw", c_int, (c_void_p, _D, c_int, c_char_p, c_uint), checked=True
)
gnutls_pubkey_init = _fn("gnutls_pubkey_init", c_int, (_P,), checked=True)
gnutls_pubkey_deinit = _fn("gnutls_pubkey_deinit", None, (c_void_p,))
gnutls_pubkey_import = _fn("gnutls_pubkey_import", c_int, (c_void_p, _D, c_int), checked=True)
gnutls_pubkey_import_privkey = _fn(
    "gnutls_pubkey_import_privkey", c_int, (c_void_p, c_void_p, c_uint, c_uint), checked=True
)
gnutls_pubkey_export2 = _fn("gnutls_pubkey_export2", c_int, (c_void_p, c_int, _D), checked=True)
gnutls_pubkey_get_key_id = _fn(
    "gnutls_pubkey_get_key_id",
    c_int,
    (c_void_p, c_uint, POINTER(c_ubyte), POINTER(c_size_t)),
    checked=True,
)
gnutls_pubkey_get_pk_algorithm = _fn(
    "gnutls_pubkey_get_pk_algorithm", c_int, (c_void_p, POINTER(c_uint))
)

gnutls_global_init()

# --- optional debug log hook ---
_log = lazylog.get("mandos.gnutls")
_log_callback: Any = None  # the CFUNCTYPE object must outlive its registration


def _log_to_logging(_level: int, message: bytes | None) -> None:
    if message is not None:
        _log.debug("GnuTLS: %s", message.decode(errors="replace").rstrip("\n"))


def set_debug_level(level: int) -> None:
    """Route GnuTLS's own debug output (its levels 0-9; 0 turns it off) to logging at DEBUG."""
    global _log_callback
    if level > 0 and _log_callback is None:
        _log_callback = LogFunc(_log_to_logging)
        gnutls_global_set_log_function(_log_callback)
    gnutls_global_set_log_level(max(level, 0))


def version() -> str:
    """The run-time version of libgnutls, e.g. '3.7.9'."""
    raw = gnutls_check_version(None)
    return raw.decode() if raw else "unknown"
