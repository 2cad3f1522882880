"""A non-blocking GnuTLS session over a connected socket fd, in the two Mandos roles.

Roles are inverted (REFERENCE.md B): the Mandos *server* is the TLS client, presents no
certificate and does not verify the peer; the Mandos *client* is the TLS server and presents an
RFC 7250 raw public key. The fd must be non-blocking; the session never closes it. Every method
returns "would block" (False/None) instead of waiting: ask ``wants_write()`` which way to wait.
No handshake timeout is set here: time limits are the caller's job.
"""

from __future__ import annotations

import ctypes
from ctypes import c_char_p, c_uint, c_void_p

from mandos.adapters.gnutls import _ffi, keys
from mandos.core.errors import HandshakeError, KeyFileError, TLSError
from mandos.core.values import KeyId

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Final

# NO_SIGNAL: GnuTLS sends with MSG_NOSIGNAL, so a vanished peer is an error, not SIGPIPE.
_SERVER_ROLE_FLAGS: Final = (
    _ffi.CLIENT | _ffi.NO_TICKETS | _ffi.ENABLE_RAWPK | _ffi.NONBLOCK | _ffi.NO_SIGNAL
)
_CLIENT_ROLE_FLAGS: Final = _ffi.SERVER | _ffi.ENABLE_RAWPK | _ffi.NONBLOCK | _ffi.NO_SIGNAL


def _allocate_credentials() -> c_void_p:
    cred = c_void_p()
    _ffi.gnutls_certificate_allocate_credentials(ctypes.byref(cred))
    return cred


class _Release:  # not weakref.finalize: weakref is ~0.3 MiB of mandos-client's RSS
    """Calls ``free(*args)`` once: at its owner's close(), or when the owner is collected."""

    __slots__ = ("_pending",)

    def __init__(self, free: Callable[..., None], *args: object) -> None:
        self._pending: tuple[Callable[..., None], tuple[object, ...]] | None = (free, args)

    def __call__(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            free, args = pending
            free(*args)


def _free_credentials(handle: c_void_p, dh_params: list[c_void_p]) -> None:
    _ffi.gnutls_certificate_free_credentials(handle)
    for params in dh_params:
        _ffi.gnutls_dh_params_deinit(params)


#: Parsed priority strings (gnutls_priority_t, shareable by sessions), kept for the process's
#: life: parsing one for every connection cost ~0.1 ms, a tenth of a connection's CPU.
_PRIORITIES: Final[dict[str, c_void_p]] = {}


def _set_priority(handle: c_void_p, priority: str) -> None:
    """Apply a priority string (empty means "NORMAL"); a bad one is a TLSError naming it."""
    text = priority or "NORMAL"
    cache = _PRIORITIES.get(text)
    if cache is None:
        cache, err_pos = c_void_p(), c_char_p()
        rc = _ffi.gnutls_priority_init(ctypes.byref(cache), text.encode(), ctypes.byref(err_pos))
        if rc < 0:
            where = err_pos.value.decode(errors="replace") if err_pos.value else ""
            raise _ffi.error(rc, prefix=f"priority string {priority!r} at {where!r}: ")
        _PRIORITIES[text] = cache
    _ffi.gnutls_priority_set(handle, cache)


class RawKeyCredentials:
    """Certificate credentials holding one RFC 7250 raw public key; shareable by sessions.

    close() frees them once the last session using them is closed, never before.
    """

    def __init__(self, handle: c_void_p) -> None:
        self._handle: c_void_p | None = handle
        self._dh_params: list[c_void_p] = []  # GnuTLS points into these: free them last
        self._users = 0
        self._closing = False
        self._finalizer = _Release(_free_credentials, handle, self._dh_params)

    @classmethod
    def from_pem(
        cls,
        pubkey_pem: bytes,
        privkey_pem: bytes,
        names: tuple[str, str] = ("public key", "private key"),
    ) -> RawKeyCredentials:
        """Credentials from a SubjectPublicKeyInfo PEM and its private key PEM.

        ``names`` (the files', where there are files) name the halves in a KeyFileError.
        """
        # Check the halves separately first, for a message that names the bad one.
        pub_name, priv_name = names
        if keys.public_key_id(pubkey_pem, pub_name) != keys.private_key_id(privkey_pem, priv_name):
            raise KeyFileError(f"{pub_name} and {priv_name} do not belong together")
        cred = _allocate_credentials()
        try:
            with _ffi.InDatum(pubkey_pem) as spki, _ffi.InDatum(privkey_pem) as pkey:
                _ffi.gnutls_certificate_set_rawpk_key_mem(
                    cred, spki, pkey, _ffi.X509_FMT_PEM, None, 0, None, 0, 0
                )
        except TLSError as exc:
            _ffi.gnutls_certificate_free_credentials(cred)
            message = f"{pub_name}, {priv_name}: not usable as credentials: {exc}"
            raise KeyFileError(message) from exc
        return cls(cred)

    @property
    def handle(self) -> c_void_p:
        """The gnutls_certificate_credentials_t; raises TLSError once closed."""
        if self._handle is None:
            raise TLSError(0, "CLOSED", "credentials are closed")
        return self._handle

    def set_dh_params_pem(self, pkcs3_pem: bytes) -> None:
        """Use these PKCS#3 DH parameters (only DHE suites use them; TLS 1.3 ECDHE does not)."""
        params = c_void_p()
        _ffi.gnutls_dh_params_init(ctypes.byref(params))
        try:
            with _ffi.InDatum(pkcs3_pem) as datum:
                _ffi.gnutls_dh_params_import_pkcs3(params, datum, _ffi.X509_FMT_PEM)
        except TLSError as exc:
            _ffi.gnutls_dh_params_deinit(params)
            raise KeyFileError(f"DH parameters cannot be read: {exc}") from exc
        _ffi.gnutls_certificate_set_dh_params(self.handle, params)
        self._dh_params.append(params)

    def set_dh_bits(self, bits: int) -> None:
        """Use GnuTLS's built-in RFC 7919 group of the security level matching ``bits``."""
        sec_param = _ffi.gnutls_pk_bits_to_sec_param(_ffi.PK_DH, bits)
        _ffi.gnutls_certificate_set_known_dh_params(self.handle, sec_param)

    def _acquire(self) -> c_void_p:
        handle = self.handle
        self._users += 1
        return handle

    def _release(self) -> None:
        self._users -= 1
        if self._closing and self._users == 0:
            self._finalizer()

    def close(self) -> None:
        """Free the credentials now, or when the last session using them closes. Idempotent."""
        self._handle = None
        self._closing = True
        if self._users == 0:
            self._finalizer()

    def __del__(self) -> None:  # collected without close(), or __init__ failed
        if (release := self.__dict__.get("_finalizer")) is not None:
            release()

    def __enter__(self) -> RawKeyCredentials:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_NO_CERTIFICATE: list[RawKeyCredentials] = []


def _no_certificate() -> RawKeyCredentials:
    """Empty credentials, made once and shared by every server-side session: allocating and
    freeing a set per connection cost ~2% of a storm's CPU. Kept for the process's life, as
    the parsed priorities are (freed at exit, its ``__del__`` would run after ``_ffi`` is gone).
    """
    if not _NO_CERTIFICATE:
        shared = RawKeyCredentials(_allocate_credentials())
        shared._finalizer = _Release(_kept)
        _NO_CERTIFICATE.append(shared)
    return _NO_CERTIFICATE[0]


def _kept() -> None:
    """What freeing the shared empty credentials does: nothing (the process's end frees them)."""


def _free_session(handle: c_void_p, credentials: RawKeyCredentials) -> None:
    _ffi.gnutls_deinit(handle)
    credentials._release()


class Session:
    """One TLS session on a non-blocking fd; create it with a role constructor, then close()."""

    def __init__(self, flags: int, fd: int, priority: str, credentials: RawKeyCredentials) -> None:
        """Low level: gnutls_init(flags) on fd with these credentials; prefer the role methods."""
        cred = credentials._acquire()
        handle = c_void_p()
        try:
            _ffi.gnutls_init(ctypes.byref(handle), flags)
        except BaseException:
            credentials._release()
            raise
        self._handle: c_void_p | None = handle
        # The finalizer's reference keeps the credentials alive as long as the session.
        self._finalizer = _Release(_free_session, handle, credentials)
        try:
            _set_priority(handle, priority)
            _ffi.gnutls_credentials_set(handle, _ffi.CRD_CERTIFICATE, cred)
            _ffi.gnutls_transport_set_int2(handle, fd, fd)
            _ffi.gnutls_handshake_set_timeout(handle, 0)
        except BaseException:
            self.close()
            raise

    @classmethod
    def mandos_server(cls, fd: int, priority: str) -> Session:
        """The Mandos server's side: TLS client, no certificate, peer not verified."""
        return cls(_SERVER_ROLE_FLAGS, fd, priority, _no_certificate())

    @classmethod
    def mandos_client(cls, fd: int, priority: str, credentials: RawKeyCredentials) -> Session:
        """The Mandos client's side: TLS server presenting the raw public key in ``credentials``."""
        return cls(_CLIENT_ROLE_FLAGS, fd, priority, credentials)

    @property
    def _h(self) -> c_void_p:
        if self._handle is None:
            raise TLSError(0, "CLOSED", "TLS session is closed")
        return self._handle

    def handshake(self) -> bool:
        """Advance the handshake: True when done, False when it would block."""
        while True:
            rc = _ffi.gnutls_handshake(self._h)
            if rc >= 0:
                return True
            if _ffi.would_block(rc):
                return False
            if rc == _ffi.E_WARNING_ALERT_RECEIVED:
                continue  # not fatal: GnuTLS says to call again
            raise self._error(rc, HandshakeError)

    def wants_write(self) -> bool:
        """After a would-block result: True to wait until writable, False until readable."""
        return bool(_ffi.gnutls_record_get_direction(self._h))

    def recv(self, max_bytes: int) -> bytes | None:
        """Up to max_bytes of data; None if it would block, b"" at the peer's close_notify.

        A TCP close without close_notify raises TLSError (GNUTLS_E_PREMATURE_TERMINATION),
        as Mandos has no framing: a cut-short secret must not look complete.
        """
        buf = ctypes.create_string_buffer(max_bytes)
        while True:
            rc = _ffi.gnutls_record_recv(self._h, buf, max_bytes)
            if rc >= 0:
                return ctypes.string_at(buf, rc)
            if _ffi.would_block(rc):
                return None
            if rc == _ffi.E_WARNING_ALERT_RECEIVED:
                continue
            raise self._error(rc)

    def send(self, data: bytes) -> int | None:
        """Send some of data: the number of bytes taken, or None if it would block.

        After None, call again with the same data (GnuTLS keeps the record it started).
        """
        rc = _ffi.gnutls_record_send(self._h, data, len(data))
        if rc >= 0:
            return int(rc)
        if _ffi.would_block(rc):
            return None
        raise self._error(rc)

    def bye(self) -> bool:
        """Send close_notify and wait for the peer's (SHUT_RDWR): True when done, False = blocked.

        A peer that just closes the TCP connection after our close_notify also counts as done.
        """
        rc = _ffi.gnutls_bye(self._h, _ffi.SHUT_RDWR)
        if rc >= 0 or rc == _ffi.E_PREMATURE_TERMINATION:
            return True
        if _ffi.would_block(rc):
            return False
        raise self._error(rc)

    def peer_key_id(self) -> KeyId:
        """The key ID of the peer's raw public key; HandshakeError if it sent anything else."""
        ctype = _ffi.gnutls_certificate_type_get2(self._h, _ffi.CTYPE_PEERS)
        if ctype != _ffi.CRT_RAWPK:
            raw_name = _ffi.gnutls_certificate_type_get_name(ctype)
            name = raw_name.decode() if raw_name else str(ctype)
            raise HandshakeError(
                _ffi.E_CERTIFICATE_ERROR, "BAD_CERTIFICATE", f"Bad certificate: type {name}"
            )
        count = c_uint(0)
        certs = _ffi.gnutls_certificate_get_peers(self._h, ctypes.byref(count))
        if not certs or count.value < 1:
            raise HandshakeError(
                _ffi.E_CERTIFICATE_ERROR, "BAD_CERTIFICATE", "Bad certificate: none sent"
            )
        # An RFC 7250 certificate entry is the DER SubjectPublicKeyInfo itself, and the finished
        # handshake proved the peer holds its private key, so the key is well-formed: hash the
        # bytes as sent (what gnutls_pubkey_get_key_id computes, at a tenth of the cost).
        return KeyId.from_spki_der(ctypes.string_at(certs[0].data, certs[0].size))

    def protocol_name(self) -> str:
        """The negotiated protocol version, e.g. 'TLS1.3'."""
        raw = _ffi.gnutls_protocol_get_name(_ffi.gnutls_protocol_get_version(self._h))
        return raw.decode() if raw else "unknown"

    def cipher_name(self) -> str:
        """The negotiated record cipher, e.g. 'AES-256-GCM'."""
        raw = _ffi.gnutls_cipher_get_name(_ffi.gnutls_cipher_get(self._h))
        return raw.decode() if raw else "unknown"

    def _error(self, rc: int, cls: type[TLSError] = TLSError) -> TLSError:
        prefix = ""
        if rc == _ffi.E_FATAL_ALERT_RECEIVED:
            alert = _ffi.gnutls_alert_get_name(_ffi.gnutls_alert_get(self._h))
            prefix = f"peer sent alert {alert.decode() if alert else '?'}: "
        return _ffi.error(rc, cls, prefix)

    def close(self) -> None:
        """Free the session (not the fd, not shared credentials). Idempotent."""
        self._finalizer()
        self._handle = None

    def __del__(self) -> None:  # collected without close(), or __init__ failed
        if (release := self.__dict__.get("_finalizer")) is not None:
            release()

    @property
    def closed(self) -> bool:
        """Whether close() has run."""
        return self._handle is None

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def check_priority(priority: str) -> None:
    """Raise TLSError unless GnuTLS accepts ``priority`` for the Mandos server's side.

    Made for a check at start-up: a session is set up on no descriptor and freed at once.
    """
    Session.mandos_server(-1, priority).close()
