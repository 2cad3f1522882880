"""One attempt to fetch the encrypted secret from one Mandos server, under asyncio (REFERENCE B).

The discovery path uses this (many servers at once); --connect uses the blocking twin in
attempt.py, which also defines the shared names (AttemptFailed, Timeouts, the socket set-up).

Rules of this module:
1. The wire, in order: TCP connect with TCP_NODELAY, ``1\\r\\n`` in ONE send (a split version
   line can be lost under SYN cookies; DECISIONS.md, Traps), then TLS with the roles reversed:
   we are the TLS *server* and present our raw public key. Then read until close_notify, then bye.
2. Every step before the data has a time limit, so a silent server never holds us. The wait for
   the data has none by default: a real server may hold the connection while an operator
   approves (approval_delay). TCP keepalive notices a server that vanished meanwhile.
3. Every failure leaves as ``AttemptFailed`` with a one-line message (no key material); zero
   bytes received means the server refused us, which is also an ``AttemptFailed`` (``refused``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Coroutine
from typing import Any

from mandos.adapters.gnutls.session import RawKeyCredentials, Session
from mandos.adapters.tls_stream import TLSStream
from mandos.client.attempt import (
    DEFAULT_TIMEOUTS,
    MAX_SECRET_BYTES,
    SockAddr,
    Timeouts,
    new_socket,
    os_error_text,
    send_version_line,
)
from mandos.core.errors import AttemptFailed, RemoteProtocolError, TLSError

__all__ = ["AttemptFailed", "SockAddr", "Timeouts", "fetch_encrypted_secret"]


async def _step(what: str, limit: float | None, step: Coroutine[Any, Any, None]) -> None:
    """Await one protocol step within ``limit`` seconds; failures name the step."""
    try:
        async with asyncio.timeout(limit):
            await step
    except TimeoutError:
        raise AttemptFailed(f"{what}: no answer within {limit:g} seconds") from None
    except TLSError as exc:
        raise AttemptFailed(f"{what}: {exc}") from exc
    except OSError as exc:
        raise AttemptFailed(f"{what}: {os_error_text(exc)}") from exc


async def _connect(family: int, sockaddr: SockAddr, limit: float | None) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = new_socket(family)
    try:
        await _step("connect", limit, loop.sock_connect(sock, sockaddr))
    except BaseException:
        sock.close()
        raise
    return send_version_line(sock)


async def fetch_encrypted_secret(
    family: int,
    sockaddr: SockAddr,
    priority: str,
    credentials: RawKeyCredentials,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    limit: int = MAX_SECRET_BYTES,
) -> bytes:
    """The bytes the server sent before close_notify (never empty); AttemptFailed otherwise."""
    try:
        sock = await _connect(family, sockaddr, timeouts.connect)
        try:
            session = Session.mandos_client(sock.fileno(), priority, credentials)
        except BaseException:
            sock.close()
            raise
        stream = TLSStream(session, sock)
        try:
            await _step("TLS handshake", timeouts.handshake, stream.handshake())
            try:
                async with asyncio.timeout(timeouts.receive):
                    data = await stream.recv_until_eof(limit)
            except TimeoutError:
                raise AttemptFailed("receive: no secret within the time limit") from None
            except TLSError as exc:
                raise AttemptFailed(f"receive: {exc}") from exc
            # The data is complete at close_notify: a failing bye() changes nothing.
            with contextlib.suppress(TLSError, OSError, TimeoutError):
                async with asyncio.timeout(timeouts.bye):
                    await stream.bye()
        finally:
            stream.close()
    except RemoteProtocolError as exc:
        raise AttemptFailed(str(exc)) from exc
    except (TLSError, OSError) as exc:  # the socket and session set-up
        raise AttemptFailed(f"TLS session: {exc}") from exc
    if not data:
        raise AttemptFailed("the server sent nothing (refused)", refused=True)
    return data
