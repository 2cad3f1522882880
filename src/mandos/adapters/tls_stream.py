"""asyncio glue for a non-blocking GnuTLS ``Session``: await instead of "would block".

Rules of this module:
1. On would-block, wait for the fd in the direction gnutls_record_get_direction() reports,
   with loop.add_reader/add_writer; never poll, never block the loop.
2. A wait can be cancelled (wrapped in ``asyncio.timeout``: time limits are the caller's job)
   and retried. A wait for writing removes its writer on the way out. The reader stays
   registered from the first wait for reading until close(), so that a connection costs one
   registration with the selector, not one per wait (two system calls and ~20 us of asyncio
   each, in a storm); it goes earlier if the fd turns readable while nothing waits.
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
        if sock.getblocking():  # no system call when the caller made it non-blocking already
            sock.setblocking(False)
        self._executor = executor
        self._session = session
        self._sock = sock
        self._fd = sock.fileno()
        self._reading: asyncio.AbstractEventLoop | None = None  # the loop the reader is on
        self._readable: asyncio.Future[None] | None = None  # what the current wait awaits

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
        if self._session.wants_write():

            def wake() -> None:
                if not ready.done():
                    ready.set_result(None)

            loop.add_writer(self._fd, wake)
            try:
                await ready
            finally:
                loop.remove_writer(self._fd)
            return
        self._readable = ready
        if self._reading is None:
            loop.add_reader(self._fd, self._on_readable)
            self._reading = loop
        try:
            await ready
        finally:
            self._readable = None

    def _on_readable(self) -> None:
        ready = self._readable
        if ready is None:
            self._stop_reading()  # nothing waits: do not wake up for it again and again
        elif not ready.done():
            ready.set_result(None)
        # else: the waiting task has been woken (or cancelled) and has yet to run

    def _stop_reading(self) -> None:
        if self._reading is not None:
            self._reading.remove_reader(self._fd)
            self._reading = None

    async def handshake(self) -> None:
        """Complete the handshake; HandshakeError if it fails.

        With an executor, each step (non-blocking: it returns at would-block) runs in a worker
        thread; ctypes releases the GIL in GnuTLS, so handshakes use more than one core.
        """
        if self._executor is None:
            while not self._session.handshake():
                await self._wait()
            return
        while not await self._handshake_step():
            await self._wait()

    async def _handshake_step(self) -> bool:
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

    async def sendall(self, data: bytes, limit: float | None = None) -> None:
        """Send all of data; TimeoutError if that waits for more than ``limit`` seconds.

        The limit is set at the first wait, so a send that never waits (a secret, nearly
        always) costs no timeout scope.
        """
        view = memoryview(data)
        deadline: float | None = None
        while view:
            sent = self._session.send(bytes(view[:CHUNK]))
            if sent is None:
                if deadline is None and limit is not None:
                    deadline = asyncio.get_running_loop().time() + limit
                async with asyncio.timeout_at(deadline):
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
        self._stop_reading()  # before the fd's number can be given to another socket
        self._session.close()
        self._sock.close()
