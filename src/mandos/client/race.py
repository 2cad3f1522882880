"""Race every known server for the password: happy eyeballs (RFC 8305) for Mandos.

Rules of this module:
1. Every target (a --connect, or an address Zeroconf found) gets its own task, started in the
   order known; the next one starts STAGGER seconds (RFC 8305 section 5, "Connection Attempt
   Delay", 250 ms) after the previous one, or at once when the previous one's first attempt
   ended without the password. Nothing waits on a dead server longer than that.
2. Each attempt's TCP connect plus TLS handshake must end within ``deadline`` seconds; after the
   handshake the server decides (send, refuse, or hold for approval) and the wait has no limit,
   as before.
3. Addresses of one server (one Zeroconf name) count as one server: once an attempt to it is
   through its handshake, its sibling attempts still connecting are cut short before they finish
   theirs (which is what asks a Mandos server for the secret), and new ones wait until it ends.
   So a Zeroconf fetch makes the server send the secret once, not once per address.
4. The judge (client/threshold.py) says what a payload means: the password (the race ends and
   every other attempt is cancelled), a kept share (that server is finished), or retry it after
   ``retry`` seconds, as is every failed attempt.
5. Every task belongs to the race's TaskGroup; nothing outlives run().
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Final

from mandos.client.attempt import SockAddr
from mandos.client.threshold import Done, Next, Verdict
from mandos.core.errors import AttemptFailed, MandosError
from mandos.core.values import Secret

log = logging.getLogger("mandos.client")

#: RFC 8305 section 5: the recommended Connection Attempt Delay.
STAGGER: Final = 0.25


@dataclass(frozen=True, slots=True)
class Target:
    """One address to try; ``server`` is the same for every address of one server."""

    label: str
    family: int
    sockaddr: SockAddr
    server: str


#: fetch(target, on_handshake) -> the encrypted payload; raises AttemptFailed.
Fetch = Callable[[Target, Callable[[], None]], Awaitable[bytes]]
Judge = Callable[[Target, bytes], Verdict]


class _CutShort(Exception):
    """A sibling address of the same server got through its handshake first."""


class Race:
    """One run of the race; ``await Race(...).run(targets, more)`` gives the password."""

    def __init__(
        self, fetch: Fetch, judge: Judge, *, deadline: float, retry: float, stagger: float = STAGGER
    ) -> None:
        self._fetch = fetch
        self._judge = judge
        self._deadline = deadline
        self._retry = retry
        self._stagger = stagger
        self._result: asyncio.Future[Secret] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._known: set[Target] = set()
        self._finished: set[str] = set()  # servers whose share is in hand
        self._through: dict[str, int] = {}  # server -> attempts past their handshake
        self._idle: dict[str, asyncio.Event] = {}  # server -> set while none is past it
        self._setup: dict[str, dict[Target, asyncio.Timeout]] = {}  # still connecting
        self._cut: set[Target] = set()

    async def run(
        self, targets: Iterable[Target], more: AsyncIterator[Target] | None = None
    ) -> Secret:
        """Race ``targets`` and any that ``more`` yields later, until the password is known."""
        loop = asyncio.get_running_loop()
        self._result = loop.create_future()
        queue: asyncio.Queue[Target] = asyncio.Queue()
        for target in targets:
            queue.put_nowait(target)
        try:
            async with asyncio.TaskGroup() as tg:
                self._spawn(tg, self._starter(tg, queue))
                if more is not None:
                    self._spawn(tg, self._feed(more, queue))
                try:
                    secret = await self._result
                finally:
                    for task in self._tasks:
                        task.cancel()
        except ExceptionGroup as group:  # Zeroconf could not browse, say: one line, not a bug
            errors = [e for e in group.exceptions if isinstance(e, MandosError)]
            if errors:
                raise errors[0] from group
            raise
        return secret

    def _spawn(self, tg: asyncio.TaskGroup, coro: Coroutine[Any, Any, None]) -> None:
        task = tg.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _feed(more: AsyncIterator[Target], queue: asyncio.Queue[Target]) -> None:
        async for target in more:
            queue.put_nowait(target)

    async def _starter(self, tg: asyncio.TaskGroup, queue: asyncio.Queue[Target]) -> None:
        while True:
            target = await queue.get()
            if target in self._known:
                continue
            self._known.add(target)
            first_ended = asyncio.Event()
            self._spawn(tg, self._keep_trying(target, first_ended))
            try:
                async with asyncio.timeout(self._stagger):
                    await first_ended.wait()
            except TimeoutError:
                log.debug("%s has not answered within %g s; starting the next", target.label,
                          self._stagger)  # fmt: skip

    async def _keep_trying(self, target: Target, first_ended: asyncio.Event) -> None:
        """Attempts to ``target`` until its server is finished or the race is over."""
        try:
            while True:
                await self._wait_for_siblings(target.server)
                if target.server in self._finished or self._over():
                    return
                try:
                    verdict = await self._attempt(target)
                except _CutShort:
                    log.debug("%s: left to a sibling address of %s", target.label, target.server)
                    continue
                first_ended.set()
                match verdict:
                    case Done(secret):
                        if self._result is not None and not self._over():
                            self._result.set_result(secret)
                        return
                    case Next.FINISHED:
                        self._finished.add(target.server)
                        return
                    case Next.RETRY:
                        log.debug("Retrying %s in %g seconds", target.label, self._retry)
                        await asyncio.sleep(self._retry)
        finally:
            first_ended.set()

    def _over(self) -> bool:
        """True once the password is known (the other tasks are about to be cancelled)."""
        return self._result is not None and self._result.done()

    def _idle_event(self, server: str) -> asyncio.Event:
        if server not in self._idle:
            self._idle[server] = asyncio.Event()
            self._idle[server].set()
        return self._idle[server]

    async def _wait_for_siblings(self, server: str) -> None:
        await self._idle_event(server).wait()

    async def _attempt(self, target: Target) -> Verdict:
        """One attempt: connect and handshake within the deadline, then wait for the server."""
        loop = asyncio.get_running_loop()
        setup = self._setup.setdefault(target.server, {})
        through = False

        def on_handshake() -> None:
            nonlocal through
            if target in self._cut:
                return  # too late to stop it; its cut-short timeout is already due
            scope.reschedule(None)
            setup.pop(target, None)
            through = True
            self._through[target.server] = self._through.get(target.server, 0) + 1
            self._idle_event(target.server).clear()
            for sibling, sibling_scope in list(setup.items()):
                self._cut.add(sibling)
                sibling_scope.reschedule(loop.time())
                del setup[sibling]

        log.debug("Connecting to %s", target.label)
        try:
            async with asyncio.timeout(self._deadline) as scope:
                setup[target] = scope
                blob = await self._fetch(target, on_handshake)
        except TimeoutError:
            if target in self._cut:
                raise _CutShort from None
            log.warning("%s: no connection and TLS handshake within %g seconds", target.label,
                        self._deadline)  # fmt: skip
            return Next.RETRY
        except AttemptFailed as exc:
            log.warning("%s: %s", target.label, exc)
            return Next.RETRY
        finally:
            setup.pop(target, None)
            self._cut.discard(target)
            if through:
                self._through[target.server] -= 1
                if not self._through[target.server]:
                    self._idle_event(target.server).set()
        return self._judge(target, blob)
