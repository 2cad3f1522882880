"""asyncio glue for a non-blocking GnuTLS ``Session``: await instead of "would block".

Rules of this module:
1. On would-block, wait for the fd in the direction gnutls_record_get_direction() reports,
   with loop.add_reader/add_writer; never poll, never block the loop.
2. Every wait removes its reader/writer on the way out, cancellation included, so a call can
   be wrapped in ``asyncio.timeout`` (time limits are the caller's job) and retried.
3. At most one task reads and one task writes at a time (the loop keeps one callback per
   fd and direction).
4. The caller sets TCP_NODELAY on the socket: without it a handshake waits ~40 ms for delayed
   ACKs (DECISIONS.md, Traps). This module only makes the socket non-blocking.
"""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import Executor
from typing import Final

from mandos.adapters.gnutls.session import Session
from mandos.core.errors import RemoteProtocolError, TLSError
from mandos.core.values import KeyId

CHUNK: Final = 16384  # one TLS record's worth of plaintext


class TLSStream:
    """A TLS session and its socket under asyncio; close() closes both."""

    def __init__(
        self, session: Session, sock: socket.socket, *, executor: Executor | None = None
    ) -> None:
        sock.setblocking(False)
        self._executor = executor
        self._session = session
        self._sock = sock
        self._fd = sock.fileno()

    @property
    def session(self) -> Session:
        """The underlying session (for peer_key_id(), protocol_name(), ...)."""
        return self._session

    def peer_key_id(self) -> KeyId:
        """The key ID of the peer's raw public key (after the handshake)."""
        return self._session.peer_key_id()

    async def _wait(self) -> None:
        """Wait until the fd is ready in the direction the last would-block needs."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        if self._session.wants_write():
            loop.add_writer(self._fd, wake)
            try:
                await ready
            finally:
                loop.remove_writer(self._fd)
        else:
            loop.add_reader(self._fd, wake)
            try:
                await ready
            finally:
                loop.remove_reader(self._fd)

    async def handshake(self) -> None:
        """Complete the handshake; HandshakeError if it fails.

        With an executor, each step (non-blocking: it returns at would-block) runs in a worker
        thread; ctypes releases the GIL in GnuTLS, so handshakes use more than one core.
        """
        while not await self._handshake_step():
            await self._wait()

    async def _handshake_step(self) -> bool:
        if self._executor is None:
            return self._session.handshake()
        step = asyncio.get_running_loop().run_in_executor(self._executor, self._session.handshake)
        try:
            return await asyncio.shield(step)
        except asyncio.CancelledError:
            # The session must not be closed while a worker still uses it.
            await asyncio.wait([step])
            raise

    async def recv(self, max_bytes: int = CHUNK) -> bytes:
        """Up to max_bytes of data, or b"" once the peer sent close_notify."""
        while (data := self._session.recv(max_bytes)) is None:
            await self._wait()
        return data

    async def recv_until_eof(self, limit: int) -> bytes:
        """Everything until close_notify; RemoteProtocolError if it exceeds ``limit`` bytes."""
        parts: list[bytes] = []
        total = 0
        while chunk := await self.recv(min(CHUNK, limit + 1 - total)):
            parts.append(chunk)
            total += len(chunk)
            if total > limit:
                raise RemoteProtocolError(f"Peer sent more than {limit} bytes")
        return b"".join(parts)

    async def sendall(self, data: bytes) -> None:
        """Send all of data."""
        view = memoryview(data)
        while view:
            sent = self._session.send(bytes(view[:CHUNK]))
            if sent is None:
                await self._wait()  # then call again with the same data, as GnuTLS requires
            else:
                view = view[sent:]

    async def bye(self) -> None:
        """Send close_notify and wait for the peer's (or its TCP close)."""
        while not self._session.bye():
            await self._wait()

    async def wait_peer_closed(self) -> None:
        """Return once the peer closes the connection (data it sends meanwhile is discarded)."""
        try:
            while await self.recv():
                pass
        except (TLSError, OSError):
            return

    def close(self) -> None:
        """Free the session and close the socket. Idempotent."""
        self._session.close()
        self._sock.close()
