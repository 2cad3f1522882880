"""Race every known server for the password: happy eyeballs (RFC 8305) for Mandos.

Rules of this module:
1. Every target (a --connect, or an address Zeroconf found) gets its own task as soon as it is
   known. Each connects and waits until the server speaks first (a Mandos server opens the TLS
   handshake): that asks for nothing yet. The TLS handshake is what asks a Mandos server for
   the secret, so it needs a *turn*: turns go one at a time, in the order the servers spoke;
   the next turn comes when the current attempt ended without the password, or STAGGER seconds
   (RFC 8305 section 5, "Connection Attempt Delay", 250 ms) after its turn began. A server that
   never speaks (silent, or its SYNs vanish) never takes a turn: it delays nobody.
2. Once a share is in hand (a threshold setup: every share is needed anyway), turns end: every
   attempt, now and later, goes straight on to its handshake.
3. Each attempt's TCP connect plus TLS handshake must end within ``deadline`` seconds, not
   counting the wait for its turn; after the handshake the server decides (send, refuse, or
   hold for approval) and the wait has no limit, as before.
4. Addresses of one server (one Zeroconf name) count as one server: once an attempt to it is
   through its handshake, its sibling attempts still connecting are cut short before they finish
   theirs, and new ones wait until it ends.
   So a Zeroconf fetch makes the server send the secret once, not once per address.
5. The judge (client/threshold.py) says what a payload means: the password (the race ends and
   every other attempt is cancelled), a kept share (that server is finished), or retry it after
   ``retry`` seconds, as is every failed attempt.
6. Every task belongs to the race's TaskGroup; nothing outlives run().
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any, Final, NamedTuple

from mandos.client.attempt import SockAddr
from mandos.client.threshold import Done, Next, Verdict
from mandos.core.errors import AttemptFailed, MandosError
from mandos.core.values import Secret

log = logging.getLogger("mandos.client")

#: RFC 8305 section 5: the recommended Connection Attempt Delay.
STAGGER: Final = 0.25


class Target(NamedTuple):  # not a dataclass: those cost ~1 ms each at start-up
    """One address to try; ``server`` is the same for every address of one server."""

    label: str
    family: int
    sockaddr: SockAddr
    server: str


class Steps(NamedTuple):
    """What the race gives each attempt: ``await turn()`` once the server has spoken, before the
    TLS handshake; ``on_handshake()`` right after it."""

    turn: Callable[[], Awaitable[None]]
    on_handshake: Callable[[], None]


#: fetch(target, steps) -> the encrypted payload; raises AttemptFailed.
Fetch = Callable[[Target, Steps], Awaitable[bytes]]
Judge = Callable[[Target, bytes], Verdict]


class _CutShort(Exception):
    """A sibling address of the same server got through its handshake first."""


class Race:
    """One run of the race; ``await Race(...).run(targets, more)`` gives the password."""

    def __init__(
        self,
        fetch: Fetch,
        judge: Judge,
        *,
        deadline: float,
        retry: float,
        stagger: float = STAGGER,
        finished: Iterable[str] = (),
    ) -> None:
        """``finished``: servers whose share is already in hand (no turns then: rule 2)."""
        self._fetch = fetch
        self._judge = judge
        self._deadline = deadline
        self._retry = retry
        self._stagger = stagger
        self._result: asyncio.Future[Secret] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._known: set[Target] = set()
        self._finished: set[str] = set(finished)  # servers whose share is in hand
        self._through: dict[str, int] = {}  # server -> attempts past their handshake
        self._idle: dict[str, asyncio.Event] = {}  # server -> set while none is past it
        self._setup: dict[str, dict[Target, asyncio.Timeout]] = {}  # still connecting
        self._cut: set[Target] = set()
        # Turns (rule 1): who has the current one, who waits, in the order they spoke.
        self._holder: Target | None = None
        self._passing: asyncio.TimerHandle | None = None
        self._waiting: dict[Target, asyncio.Future[None]] = {}
        self._all_at_once = bool(self._finished)  # rule 2

    async def run(
        self, targets: Iterable[Target], more: AsyncIterator[Target] | None = None
    ) -> Secret:
        """Race ``targets`` and any that ``more`` yields later, until the password is known."""
        loop = asyncio.get_running_loop()
        self._result = loop.create_future()
        try:
            async with asyncio.TaskGroup() as tg:
                for target in targets:
                    self._start(tg, target)
                if more is not None:
                    self._spawn(tg, self._feed(tg, more))
                try:
                    secret = await self._result
                finally:
                    for task in self._tasks:
                        task.cancel()
                    if self._passing is not None:
                        self._passing.cancel()
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

    def _start(self, tg: asyncio.TaskGroup, target: Target) -> None:
        if target not in self._known:
            self._known.add(target)
            self._spawn(tg, self._keep_trying(target))

    async def _feed(self, tg: asyncio.TaskGroup, more: AsyncIterator[Target]) -> None:
        async for target in more:
            self._start(tg, target)

    async def _keep_trying(self, target: Target) -> None:
        """Attempts to ``target`` until its server is finished or the race is over."""
        while True:
            await self._wait_for_siblings(target.server)
            if target.server in self._finished or self._over():
                return
            try:
                verdict = await self._attempt(target)
            except _CutShort:
                log.debug("%s: left to a sibling address of %s", target.label, target.server)
                self._turn_over(target)
                continue
            if not isinstance(verdict, Done):  # the password keeps the turn: nobody else asks
                self._turn_over(target)
            match verdict:
                case Done(secret):
                    if self._result is not None and not self._over():
                        self._result.set_result(secret)
                    return
                case Next.FINISHED:
                    self._finished.add(target.server)
                    self._turns_end()
                    return
                case Next.RETRY:
                    log.debug("Retrying %s in %g seconds", target.label, self._retry)
                    await asyncio.sleep(self._retry)

    # ----------------------------------------------------------------- turns (rules 1 and 2)

    async def _take_turn(self, target: Target, scope: asyncio.Timeout) -> None:
        """Wait for ``target``'s turn to do its handshake; its deadline starts again then."""
        if not self._all_at_once:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting[target] = waiter
            self._pass_turn()
            try:
                await waiter
            finally:
                if self._waiting.get(target) is waiter:
                    del self._waiting[target]
        if target not in self._cut:  # cut short meanwhile: its timeout is due now, keep it
            scope.reschedule(asyncio.get_running_loop().time() + self._deadline)

    def _pass_turn(self) -> None:
        """Give the turn to the first waiting attempt, if nobody has it."""
        if self._holder is not None or self._all_at_once:
            return
        for target, waiter in list(self._waiting.items()):
            del self._waiting[target]
            if not waiter.done():
                self._holder = target
                waiter.set_result(None)
                loop = asyncio.get_running_loop()
                self._passing = loop.call_later(self._stagger, self._turn_over, target, True)
                return

    def _turn_over(self, target: Target, late: bool = False) -> None:
        """``target``'s attempt ended, or its turn has lasted STAGGER seconds: the next one."""
        if self._holder != target:
            return
        if late:
            log.debug("%s has not answered within %g s; the next one's turn", target.label,
                      self._stagger)  # fmt: skip
        elif self._passing is not None:
            self._passing.cancel()
        self._holder = self._passing = None
        self._pass_turn()

    def _turns_end(self) -> None:
        """Rule 2: a share is in hand; every attempt goes straight to its handshake."""
        self._all_at_once = True
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_result(None)
        self._waiting.clear()

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

        async def turn() -> None:
            await self._take_turn(target, scope)

        log.debug("Connecting to %s", target.label)
        try:
            async with asyncio.timeout(self._deadline) as scope:
                setup[target] = scope
                blob = await self._fetch(target, Steps(turn, on_handshake))
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
