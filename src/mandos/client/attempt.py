"""One attempt to fetch the encrypted secret from one server, without asyncio (REFERENCE B).

The ``--connect`` path of mandos-client uses this module: importing asyncio costs a third of
the client's start-up, and one connection at a time needs no event loop. The discovery path,
which talks to many servers at once, uses the asyncio twin in session.py; both share the
names defined here (Timeouts, the socket set-up, ``failing_as``: the one error translation).

Rules of this module:
1. The wire, in order: TCP connect with TCP_NODELAY, ``1\\r\\n`` in ONE send (a split version
   line can be lost under SYN cookies; DECISIONS.md, Traps), then TLS with the roles reversed:
   we are the TLS *server* and present our raw public key. Then read until close_notify, then bye.
2. Every step before the data has a time limit (select() with a deadline), so a silent server
   never holds us. The wait for the data has none by default: a real server may hold the
   connection while an operator approves. TCP keepalive notices a server that vanished.
3. Every failure leaves as ``AttemptFailed`` with a one-line message naming the step (no key
   material), translated by ``failing_as`` for both twins; zero bytes received means the server
   refused us, which is also an ``AttemptFailed`` (``refused``).
4. A signal handler may raise out of any wait: the socket and the session are closed on the way.
"""

from __future__ import annotations

import _socket as socket  # socket's C core: the socket module imports enum and selectors
import errno
import os
import select
import time

from mandos.core.errors import AttemptFailed, RemoteProtocolError, TLSError
from mandos.core.frozen import Frozen

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Sequence
    from types import TracebackType
    from typing import Final, TypeVar

    from mandos.adapters.gnutls.session import RawKeyCredentials, Session

    T = TypeVar("T")
    S = TypeVar("S", bound=socket.socket)  # _socket's class or socket's (session.py)

VERSION_LINE: Final = b"1\r\n"
#: The largest secret we accept: a LUKS key file is at most 8 MiB, OpenPGP adds little.
MAX_SECRET_BYTES: Final = 16 * 1024 * 1024
#: (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT): a vanished server is noticed in about 2 minutes.
KEEPALIVE: Final = (60, 10, 6)
CHUNK: Final = 16384  # one TLS record's worth of plaintext

SockAddr = tuple[str, int] | tuple[str, int, int, int]


class Timeouts(Frozen):  # not a dataclass: dataclasses costs ~1.2 MiB of RSS
    """Per-attempt time limits in seconds; None means no limit."""

    __slots__ = ("connect", "handshake", "receive", "bye", "setup")  # noqa: RUF023 - as __init__
    connect: float | None
    handshake: float | None
    receive: float | None
    bye: float | None
    setup: float | None  # connect and handshake together (mandos-client --deadline)

    def __init__(
        self,
        connect: float | None = 10.0,
        handshake: float | None = 10.0,
        receive: float | None = None,
        bye: float | None = 5.0,
        setup: float | None = None,
    ) -> None:
        self._init(connect=connect, handshake=handshake, receive=receive, bye=bye, setup=setup)


DEFAULT_TIMEOUTS: Final = Timeouts()


def os_error_text(exc: OSError) -> str:
    """The C library's text for the error ("Connection refused"), without Python's decoration."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


class failing_as:  # used as a function; not contextlib (functools)
    """``with failing_as(what, limit):`` turn one step's failure into an AttemptFailed naming
    the step (both twins use this).

    ``limit`` is the step's time limit in seconds: a TimeoutError without an errno is ours
    (select() or asyncio ran out of time); with one it is the kernel's (keepalive gave up).
    """

    def __init__(self, what: str, limit: float | None = None) -> None:
        self._what = what
        self._limit = limit

    def __enter__(self) -> None:
        pass

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        what, limit = self._what, self._limit
        if isinstance(exc, TimeoutError) and exc.errno is None and limit is not None:
            raise AttemptFailed(f"{what}: no answer within {limit:g} seconds") from None
        if isinstance(exc, OSError):
            raise AttemptFailed(f"{what}: {os_error_text(exc)}") from exc
        if isinstance(exc, (TLSError, RemoteProtocolError)):
            raise AttemptFailed(f"{what}: {exc}") from exc


def new_socket(family: int) -> socket.socket:
    """A non-blocking TCP socket with TCP_NODELAY and keepalive set."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        idle, interval, count = KEEPALIVE
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
    except BaseException:
        sock.close()
        raise
    return sock


def _deadline(limit: float | None) -> float | None:
    return None if limit is None else time.monotonic() + limit


def _least(a: float | None, b: float | None) -> float | None:
    """The smaller limit; None (no limit) only if both are None."""
    return b if a is None else a if b is None else min(a, b)


def _wait(fd: int, *, write: bool, deadline: float | None) -> None:
    """Block until ``fd`` is ready in one direction; TimeoutError at the deadline."""
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TimeoutError
        ready = select.select([], [fd], [], left) if write else select.select([fd], [], [], left)
        if ready[0] or ready[1]:
            return


def _drive(session: Session, fd: int, step: Callable[[], T | None], deadline: float | None) -> T:
    """Call ``step`` until it returns a value, waiting where GnuTLS said it would block."""
    while (result := step()) is None:
        _wait(fd, write=session.wants_write(), deadline=deadline)
    return result


def _tcp_connect(sock: socket.socket, sockaddr: SockAddr, limit: float | None) -> None:
    """Connect the non-blocking ``sock``; OSError (TimeoutError at ``limit``) if it fails."""
    err = sock.connect_ex(sockaddr)
    if err == errno.EINPROGRESS:  # wait until writable, then read the outcome
        _wait(sock.fileno(), write=True, deadline=_deadline(limit))
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))


def send_version_line(sock: S) -> S:
    """Write the version line on the fresh connection ``sock`` in one send(), and return it.

    A fresh connection has an empty send buffer, so three bytes always go in one piece. On
    failure ``sock`` is closed and AttemptFailed raised.
    """
    try:
        with failing_as("send"):
            sent = sock.send(VERSION_LINE)
    except BaseException:
        sock.close()
        raise
    if sent != len(VERSION_LINE):
        sock.close()
        raise AttemptFailed("send: the version line did not go in one piece")
    return sock


def _connect(family: int, sockaddr: SockAddr, limit: float | None) -> socket.socket:
    sock = new_socket(family)
    try:
        with failing_as("connect", limit):
            _tcp_connect(sock, sockaddr, limit)
    except BaseException:
        sock.close()
        raise
    return send_version_line(sock)


def _receive(session: Session, fd: int, limit: int, deadline: float | None) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size = min(CHUNK, limit + 1 - total)
        chunk = _drive(session, fd, lambda: session.recv(size), deadline)  # noqa: B023
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        total += len(chunk)
        if total > limit:
            raise RemoteProtocolError(f"Peer sent more than {limit} bytes")


def fetch_blocking(
    family: int,
    sockaddr: SockAddr,
    priority: str,
    credentials: RawKeyCredentials,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    limit: int = MAX_SECRET_BYTES,
) -> bytes:
    """The bytes the server sent before close_notify (never empty); AttemptFailed otherwise."""
    setup = _deadline(timeouts.setup)
    sock = _connect(family, sockaddr, _least(timeouts.connect, timeouts.setup))
    return fetch_on(sock, priority, credentials, timeouts, limit, setup)


def fetch_on(
    sock: socket.socket,
    priority: str,
    credentials: RawKeyCredentials,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    limit: int = MAX_SECRET_BYTES,
    setup: float | None = None,
) -> bytes:
    """:func:`fetch_blocking` from the TLS handshake on, on ``sock`` (connected, the version
    line sent), which it closes; ``setup`` is the handshake's deadline (time.monotonic())."""
    from mandos.adapters.gnutls.session import Session

    try:
        with failing_as("TLS session"):
            session = Session.mandos_client(sock.fileno(), priority, credentials)
        try:
            data = _exchange(session, sock.fileno(), timeouts, limit, setup)
        finally:
            session.close()
    finally:
        sock.close()
    if not data:
        raise AttemptFailed("the server sent nothing (refused)", refused=True)
    return data


def spoken(
    targets: Sequence[tuple[int, SockAddr]], until: float
) -> Generator[tuple[int, socket.socket], None, None]:
    """Connect to every target at once; yield (its index, its socket) as each server speaks
    first (a Mandos server opens the TLS handshake), waiting until ``until`` (monotonic) at most.

    A target that cannot be reached, refuses, or stays silent is left out. A yielded socket
    belongs to the caller; the others are closed when the generator ends or is closed.
    """
    connecting: dict[int, tuple[int, socket.socket]] = {}
    waiting: dict[int, tuple[int, socket.socket]] = {}
    try:
        for index, (family, sockaddr) in enumerate(targets):
            sock = new_socket(family)
            if sock.connect_ex(sockaddr) in (0, errno.EINPROGRESS):
                connecting[sock.fileno()] = (index, sock)
            else:
                sock.close()
        while connecting or waiting:
            # Past ``until`` (the caller's own steps took that long) only what is ready counts.
            left = max(0.0, until - time.monotonic())
            readable, writable, _ = select.select(list(waiting), list(connecting), [], left)
            if not (readable or writable):
                return
            for fd in writable:
                index, sock = connecting.pop(fd)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    sock.close()
                    continue
                try:  # noqa: SIM105 - contextlib imports functools and collections (RSS)
                    waiting[fd] = (index, send_version_line(sock))
                except AttemptFailed:  # it closed the socket
                    pass
            for fd in readable:
                yield waiting.pop(fd)
    finally:
        for _index, sock in (*connecting.values(), *waiting.values()):
            sock.close()


def _exchange(
    session: Session, fd: int, timeouts: Timeouts, limit: int, setup: float | None = None
) -> bytes:
    """Handshake (by the ``setup`` deadline too), read until close_notify, say goodbye;
    AttemptFailed names the failing step."""
    handshake_by = _least(_deadline(timeouts.handshake), setup)
    with failing_as("TLS handshake", _least(timeouts.handshake, timeouts.setup)):
        _drive(session, fd, lambda: session.handshake() or None, handshake_by)
    with failing_as("receive", timeouts.receive):
        data = _receive(session, fd, limit, _deadline(timeouts.receive))
    # The data is complete at close_notify: a failing bye() changes nothing.
    try:  # noqa: SIM105 - contextlib imports functools and collections (RSS)
        _drive(session, fd, lambda: session.bye() or None, _deadline(timeouts.bye))
    except (TLSError, OSError):
        pass
    return data
