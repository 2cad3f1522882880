"""mandos-client's --connect paths without asyncio: one server, asked until it answers; several,
in a first round by the race's rules while every server behaves.

An event loop (asyncio) is a third of the --connect path's start-up: these run in one thread
with blocking sockets and select(). What they cannot finish (a server fails or stalls in the
first round) is left to the asyncio race (client/race.py), with the shares kept.
"""

from __future__ import annotations

import time

from mandos.adapters import lazylog
from mandos.client.args import ClientOptions, ConnectTarget
from mandos.client.attempt import SockAddr, Timeouts, fetch_blocking, fetch_on, spoken
from mandos.client.keys import Keys, decrypt
from mandos.client.threshold import Done, Judge, Next
from mandos.core.errors import AttemptFailed
from mandos.core.shares import Share
from mandos.core.values import Secret
from mandos.initramfs.argp import decimal

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from typing import Final

    from mandos.client.threshold import Slip39

log = lazylog.get("mandos.client")

#: How long one server's handshake and answer may take in first_round (RFC 8305's 250 ms).
FIRST_ROUND_STEP: Final = 0.25


def connect_and_retry(opts: ClientOptions, keys: Keys, timeouts: Timeouts | None = None) -> Secret:
    """The one --connect server, every --retry seconds, until it gives the password (no loop).

    Blocks until then; a stop signal raises out of it (the socket is closed on the way). A share
    alone is not the password: it is logged and the server asked again (give K servers).
    """
    t = timeouts or Timeouts(setup=opts.deadline)
    assert opts.connect is not None
    label, family, sockaddr = connect_target(opts.connect)
    judge = Judge(lambda label, blob: decrypt(label, blob, keys))
    told = False
    while True:
        log.debug("Connecting to %s", label)
        try:
            blob = fetch_blocking(family, sockaddr, opts.priority, keys.credentials, t)
            if isinstance(verdict := judge.judge(label, blob), Done):
                return verdict.secret
            if verdict is Next.FINISHED and not told:
                told = True
                log.warning("%s sent a share: a threshold needs more servers (--connect)", label)
        except AttemptFailed as exc:
            log.warning("%s: %s", label, exc)
        log.debug("Retrying %s in %g seconds", label, opts.retry)
        time.sleep(opts.retry)


def connect_target(target: ConnectTarget) -> tuple[str, int, SockAddr]:
    import _socket as socket  # socket's C core: the socket module imports enum (RSS)

    if not target.ipv6:
        return f"{target.host}:{target.port}", socket.AF_INET, (target.host, target.port)
    scope_id = 0
    if target.scope is not None:
        try:
            number = decimal(target.scope)
            scope_id = number if number is not None else socket.if_nametoindex(target.scope)
        except OSError:
            log.warning("No interface %s for %s", target.scope, target.host)
    label = f"[{target.host}{'%' + target.scope if target.scope else ''}]:{target.port}"
    return label, socket.AF_INET6, (target.host, target.port, 0, scope_id)


class FirstRound:  # not a dataclass: those cost about 1 ms each at start-up
    """What the asyncio-free first round over several --connect found (see first_round)."""

    __slots__ = ("finished", "judge", "secret")

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.finished: set[str] = set()  # servers whose share is in hand
        self.secret: Secret | None = None


def first_round(
    opts: ClientOptions,
    keys: Keys,
    slip39: Slip39 | None = None,
    stagger: float = FIRST_ROUND_STEP,
) -> FirstRound:
    """Several --connect, while every server behaves, without asyncio (a third of the start-up).

    The race's rules (client/race.py) in one thread: connect to all at once; as each server
    speaks first, finish its handshake and take its payload, one server at a time, so a plain
    secret is asked of one server only; stop at the password. A server that stays silent
    costs nothing; one that fails, or takes more than ``stagger`` seconds for its handshake or
    its answer, is left for the race. When no server is left to speak (or --deadline passed)
    without the password, the asyncio race goes on from there, with the shares kept.
    """
    judge = Judge(lambda label, blob: decrypt(label, blob, keys), slip39)
    found = FirstRound(judge)
    targets = [connect_target(c) for c in opts.connects]
    for label, _family, _sockaddr in targets:
        log.debug("Connecting to %s", label)
    until = time.monotonic() + opts.deadline
    step = min(stagger, opts.deadline)
    timeouts = Timeouts(connect=None, handshake=step, receive=step, bye=step)
    ready = spoken([(family, sockaddr) for _label, family, sockaddr in targets], until)
    opened: list[tuple[str, Share]] = []  # shares in hand, not yet checked (threshold.py, 5)
    try:
        for index, sock in ready:
            label = targets[index][0]
            try:
                blob = fetch_on(sock, opts.priority, keys.credentials, timeouts)
            except AttemptFailed as exc:  # the race asks it again if it is still needed
                log.warning("%s: %s", label, exc)
                continue
            match judge.open(label, blob):
                case Done(secret):
                    found.secret = secret
                    return found
                case Share() as share:
                    opened.append((label, share))
                case _:  # RETRY: the race asks it again
                    continue
            # Fewer than K: fetch the next one while the share worker loads SLIP-39.
            if len(opened) >= share.threshold and _collect(found, opened):
                return found
    finally:
        ready.close()
    _collect(found, opened)
    return found


def _collect(found: FirstRound, opened: list[tuple[str, Share]]) -> bool:
    """Check and keep the shares ``opened``, noting the password or the finished servers."""
    for label, share in opened:
        match found.judge.collect(label, share):
            case Done(secret):
                found.secret = secret
            case Next.FINISHED:
                found.finished.add(label)
    opened.clear()
    return found.secret is not None
