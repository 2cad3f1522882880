"""One attempt to fetch the encrypted secret from one Mandos server, under asyncio (REFERENCE B).

The discovery path uses this (many servers at once); --connect uses the blocking twin in
attempt.py, which also defines the shared names (Timeouts, the socket set-up, and
``failing_as``, the one translation of a step's failure into ``AttemptFailed``).

Rules of this module:
1. The wire, in order: TCP connect with TCP_NODELAY, ``1\\r\\n`` in ONE send (a split version
   line can be lost under SYN cookies; DECISIONS.md, Traps), then TLS with the roles reversed:
   we are the TLS *server* and present our raw public key. Then read until close_notify, then bye.
2. Every step before the data has a time limit, so a silent server never holds us. The wait for
   the data has none by default: a real server may hold the connection while an operator
   approves (approval_delay). TCP keepalive notices a server that vanished meanwhile.
3. Every failure leaves as ``AttemptFailed`` with a one-line message naming the step (no key
   material), translated by ``attempt.failing_as`` exactly as in the blocking twin; zero
   bytes received means the server refused us, which is also an ``AttemptFailed`` (``refused``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from mandos.adapters.gnutls.session import RawKeyCredentials, Session
from mandos.adapters.tls_stream import TLSStream
from mandos.client.attempt import (
    DEFAULT_TIMEOUTS,
    MAX_SECRET_BYTES,
    SockAddr,
    Timeouts,
    failing_as,
    new_socket,
    send_version_line,
)
from mandos.core.errors import AttemptFailed, TLSError

__all__ = ["AttemptFailed", "SockAddr", "Timeouts", "fetch_encrypted_secret"]

T = TypeVar("T")


async def _step(what: str, limit: float | None, step: Coroutine[Any, Any, T]) -> T:
    """Await one protocol step within ``limit`` seconds; failures name the step."""
    with failing_as(what, limit):
        async with asyncio.timeout(limit):
            return await step


async def _connect(family: int, sockaddr: SockAddr, limit: float | None) -> socket.socket:
    loop = asyncio.get_running_loop()
    # asyncio wants the socket module's class; new_socket makes _socket's (attempt.py)
    sock = socket.socket(fileno=new_socket(family).detach())
    try:
        sock.setblocking(False)
        await _step("connect", limit, loop.sock_connect(sock, sockaddr))
    except BaseException:
        sock.close()
        raise
    return send_version_line(sock)


async def _readable(sock: socket.socket) -> None:
    """Until ``sock`` has something to read (the server's first TLS message, or its close)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def spoke() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), spoke)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


async def fetch_encrypted_secret(
    family: int,
    sockaddr: SockAddr,
    priority: str,
    credentials: RawKeyCredentials,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    limit: int = MAX_SECRET_BYTES,
    on_handshake: Callable[[], None] | None = None,
    turn: Callable[[], Awaitable[None]] | None = None,
) -> bytes:
    """The bytes the server sent before close_notify (never empty); AttemptFailed otherwise.

    With ``turn``, once the server has spoken (it opens the TLS handshake) ``await turn()``
    comes before our part of the handshake, which is what asks for the secret.
    ``on_handshake`` is called once the TLS handshake is done, that is when the server is
    about to decide whether to send the secret (client/race.py lifts its deadline then).
    """
    sock = await _connect(family, sockaddr, timeouts.connect)
    try:
        with failing_as("TLS session"):
            session = Session.mandos_client(sock.fileno(), priority, credentials)
    except BaseException:
        sock.close()
        raise
    stream = TLSStream(session, sock)
    try:
        if turn is not None:
            await _step("TLS handshake", timeouts.handshake, _readable(sock))
            await turn()
        await _step("TLS handshake", timeouts.handshake, stream.handshake())
        if on_handshake is not None:
            on_handshake()
        data = await _step("receive", timeouts.receive, stream.recv_until_eof(limit))
        # The data is complete at close_notify: a failing bye() changes nothing.
        with contextlib.suppress(TLSError, OSError):
            async with asyncio.timeout(timeouts.bye):
                await stream.bye()
    finally:
        stream.close()
    if not data:
        raise AttemptFailed("the server sent nothing (refused)", refused=True)
    return data
