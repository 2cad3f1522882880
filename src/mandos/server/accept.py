"""The accept loop: one task per connection, and what to do when descriptors run short.

Connections are capped below ``ulimit -n``, keeping ``SPARE_DESCRIPTORS`` free for everything
else (state saves, checkers, D-Bus): past the cap, the oldest connection that has not finished
its TLS handshake is shed (cancelled, which closes its socket). A few hundred idle peers can
then neither lock real clients out nor stop the state from being saved.

Should ``accept()`` still fail with EMFILE/ENFILE (descriptors taken by something else), the
connection stays queued in the kernel and the listener stays readable, so a naive loop spins and
logs without end. Instead: the oldest unfinished connection is shed; when there is none, the
reserve descriptor is given up for a moment to accept the queued connection and close it at
once (the peer retries later instead of hanging), and the loop backs off, up to
``MAX_BACKOFF_SECONDS``. Either way one line is logged per episode (a new episode starts after
``EPISODE_QUIET_SECONDS`` without shedding).

At most ``MAX_HANDSHAKES`` connections are accepted and not yet past their TLS handshake; the
others wait in the kernel's listen queue, where no handshake timeout runs. Under a storm (a
power cut: 10,000 clients at once) the handshakes in progress then finish in a fraction of a
second each, instead of all 10,000 sharing the CPU and every one of them passing the 10 s
handshake timeout. Peers that never speak cannot keep the slots: when no handshake has finished
for ``SLOT_PATIENCE_SECONDS``, the oldest unfinished connection is shed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import socket
from pathlib import Path
from typing import Any

from mandos.adapters.tasks import TaskOwner
from mandos.server.connection import ConnectionHandler, peer_name

log = logging.getLogger("mandos")

SPARE_DESCRIPTORS = 32
EPISODE_QUIET_SECONDS = 5.0
FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 1.0
MAX_HANDSHAKES = 128
SLOT_PATIENCE_SECONDS = 2.0
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)


def connection_limit(spare: int = SPARE_DESCRIPTORS) -> int:
    """How many connections may be open at once: ``ulimit -n`` less what is open and ``spare``."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    in_use = sum(1 for _ in Path("/proc/self/fd").iterdir())
    return max(1, soft - in_use - spare)


class AcceptLoop:
    """Accepts connections on ``listener`` and serves each with ``handler``."""

    def __init__(self, listener: socket.socket, handler: ConnectionHandler) -> None:
        self._listener = listener
        self._handler = handler
        self._connections = TaskOwner("serving a connection")
        # Before their handshake, oldest first, with their sockets (a task shed before it ran
        # never closed its own).
        self._unfinished: dict[asyncio.Task[Any], socket.socket] = {}
        self._reserve: int | None = None
        self._last_shed = -EPISODE_QUIET_SECONDS
        self._backoff = FIRST_BACKOFF_SECONDS
        self._progress = asyncio.Event()  # set when a connection leaves self._unfinished

    async def run(self) -> None:
        """Accept until cancelled; then end every connection."""
        loop = asyncio.get_running_loop()
        self._listener.setblocking(False)
        self._reserve = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        limit = connection_limit()
        try:
            while True:
                if len(self._unfinished) >= MAX_HANDSHAKES:
                    await self._handshake_slot()
                try:
                    try:  # what the listen queue holds is taken without a future each
                        conn, address = self._listener.accept()
                    except (BlockingIOError, InterruptedError):
                        conn, address = await loop.sock_accept(self._listener)
                except OSError as exc:
                    await self._accept_failed(exc)
                    continue
                self._backoff = FIRST_BACKOFF_SECONDS
                if len(self._connections) >= limit and not await self._shed(
                    f"{limit} connections at once"
                ):
                    conn.close()  # every connection is past its handshake: turn this one away
                    continue
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                task = self._connections.start(self._serve(conn, peer_name(address)))
                # Its handshake slot is taken now, not when it first runs: the loop goes on
                # accepting what is queued without a turn of the event loop per connection.
                self._unfinished[task] = conn
        finally:
            await self._connections.aclose()
            for conn in self._unfinished.values():
                conn.close()
            self._unfinished.clear()
            if self._reserve is not None:
                os.close(self._reserve)
                self._reserve = None

    async def _serve(self, conn: socket.socket, peer: str) -> None:
        me = asyncio.current_task()
        assert me is not None
        try:
            await self._handler.serve(conn, peer, lambda: self._finished(me))
        finally:
            self._finished(me)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        if self._unfinished.pop(task, None) is not None:
            self._progress.set()

    async def _handshake_slot(self) -> None:
        """Wait until fewer than MAX_HANDSHAKES connections are before their handshake's end."""
        while len(self._unfinished) >= MAX_HANDSHAKES:
            self._progress.clear()
            try:
                async with asyncio.timeout(SLOT_PATIENCE_SECONDS):
                    await self._progress.wait()
            except TimeoutError:
                why = f"no handshake finished for {SLOT_PATIENCE_SECONDS:g} s"
                await self._shed(why)

    async def _shed(self, why: str) -> bool:
        """End the oldest connection still before its handshake; False if there is none."""
        now = asyncio.get_running_loop().time()
        if now - self._last_shed > EPISODE_QUIET_SECONDS:
            log.warning(
                "%s; shedding the oldest connections that have not finished their handshake", why
            )
        self._last_shed = now
        if not self._unfinished:
            return False
        oldest = next(iter(self._unfinished))
        conn = self._unfinished.pop(oldest)
        oldest.cancel()
        await asyncio.wait({oldest})
        conn.close()  # closed already if the task had started (idempotent)
        return True

    async def _accept_failed(self, exc: OSError) -> None:
        if exc.errno not in _OUT_OF_DESCRIPTORS:
            log.warning("accept() failed: %s", exc.strerror or exc)
            await asyncio.sleep(0.1)
            return
        if await self._shed(f"accept() failed: {exc.strerror}"):
            return
        self._refuse_one()
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)

    def _refuse_one(self) -> None:
        """Spend the reserve descriptor on accepting one queued connection and closing it."""
        if self._reserve is not None:
            os.close(self._reserve)
            self._reserve = None
            try:
                conn, _ = self._listener.accept()
                conn.close()
            except OSError:
                pass
        try:
            self._reserve = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._reserve = None  # taken meanwhile: tried again next time
