"""client/race.py's scheduling, with attempts that are coroutines of the test (no network here:
tests/e2e/test_race.py and test_threshold.py race real servers). Each fetch records its start,
and whether it was cancelled."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

import pytest

from mandos.adapters import slip39
from mandos.client.race import Race, Steps, Target
from mandos.client.threshold import Judge
from mandos.core.errors import AttemptFailed
from mandos.core.values import Secret

Behaviour = Callable[[Steps], Awaitable[bytes]]


def target(name: str, server: str | None = None) -> Target:
    return Target(name, socket.AF_INET, ("127.0.0.1", 1), server=server or name)


class Script:
    """What each target's fetch does; records starts, handshakes (the request for the secret)
    and cancellations."""

    def __init__(self, behaviours: dict[str, Behaviour]) -> None:
        self.behaviours = behaviours
        self.started: list[str] = []
        self.handshakes: list[str] = []
        self.cancelled: list[str] = []

    async def fetch(self, t: Target, steps: Steps) -> bytes:
        self.started.append(t.label)

        def on_handshake() -> None:
            self.handshakes.append(t.label)
            steps.on_handshake()

        try:
            return await self.behaviours[t.label](Steps(steps.turn, on_handshake))
        except asyncio.CancelledError:
            self.cancelled.append(t.label)
            raise


def judge() -> Callable[[Target, bytes], object]:
    j = Judge(lambda _label, blob: Secret(blob))
    return lambda t, blob: j.judge(t.label, blob)


async def hang(_steps: Steps) -> bytes:
    """Accepts and never says a word (or its SYNs vanish)."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def stall(steps: Steps) -> bytes:
    """Speaks first, then never finishes the handshake."""
    await steps.turn()
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def answer(payload: bytes, delay: float = 0.0) -> Behaviour:
    async def run(steps: Steps) -> bytes:
        await steps.turn()
        steps.on_handshake()
        await asyncio.sleep(delay)
        return payload

    return run


async def refuse(_steps: Steps) -> bytes:
    raise AttemptFailed("connect: Connection refused")


def race(script: Script, **kw: float) -> Race:
    kw.setdefault("deadline", 30.0)
    kw.setdefault("retry", 30.0)
    return Race(script.fetch, judge(), **kw)  # type: ignore[arg-type]


async def test_silent_servers_take_no_turn_and_the_rest_are_cancelled() -> None:
    script = Script({"a": hang, "b": hang, "c": answer(b"pw")})
    async with asyncio.timeout(10):  # the stagger is an hour: a and b must not hold c up
        secret = await race(script, stagger=3600).run([target("a"), target("b"), target("c")])
    assert secret == Secret(b"pw")
    assert script.started == ["a", "b", "c"]
    assert sorted(script.cancelled) == ["a", "b"]


async def test_a_plain_secret_is_asked_of_one_server_only() -> None:
    """Both servers speak at once; only the first gets its turn to finish the handshake (the
    request for the secret); the second is cancelled before it asks."""
    script = Script({"a": answer(b"pw", delay=0.05), "b": answer(b"pw")})
    secret = await race(script, stagger=3600).run([target("a"), target("b")])
    assert secret == Secret(b"pw")
    assert script.started == ["a", "b"]
    assert script.handshakes == ["a"]
    assert script.cancelled == ["b"]


async def test_a_server_stalling_its_handshake_passes_the_turn_after_the_stagger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    script = Script({"a": stall, "b": answer(b"pw")})
    assert await race(script, stagger=0.05).run([target("a"), target("b")]) == Secret(b"pw")
    assert "a has not answered within 0.05 s; the next one's turn" in caplog.text
    assert script.cancelled == ["a"]


async def test_after_a_share_every_server_goes_at_once() -> None:
    """s1's share says this is a threshold setup: s2 (stalling) no longer holds s3 up."""
    payloads = slip39.make_shares(b"threshold pw", 2, 3, bytes(range(16)))
    script = Script({"s1": answer(payloads[0]), "s2": stall, "s3": answer(payloads[2])})
    async with asyncio.timeout(10):  # the stagger is an hour
        secret = await race(script, stagger=3600).run([target("s1"), target("s2"), target("s3")])
    assert secret == Secret(b"threshold pw")
    assert script.handshakes == ["s1", "s3"]
    assert script.cancelled == ["s2"]


async def test_a_failed_attempt_starts_the_next_at_once() -> None:
    script = Script({"a": refuse, "b": answer(b"pw")})
    async with asyncio.timeout(10):  # the stagger below is an hour: only a failure moves on
        secret = await race(script, stagger=3600).run([target("a"), target("b")])
    assert secret == Secret(b"pw")


async def test_the_deadline_ends_a_silent_attempt_and_it_is_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = Script({"mute": hang, "late": answer(b"pw", delay=0.3)})
    r = race(script, stagger=0.0, deadline=0.05, retry=0.01)
    assert await r.run([target("mute"), target("late")]) == Secret(b"pw")
    assert script.started.count("mute") >= 2
    assert "mute: no connection and TLS handshake within 0.05 seconds" in caplog.text


async def test_no_deadline_after_the_handshake() -> None:
    script = Script({"approval": answer(b"pw", delay=0.2)})
    assert await race(script, deadline=0.05).run([target("approval")]) == Secret(b"pw")


async def test_a_sibling_through_its_handshake_cuts_the_others_short(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two addresses of one server: the second gets through first; the first, still connecting,
    is cut short (not a failure, no retry) and is not started again while the second waits."""
    caplog.set_level(logging.DEBUG)
    v4_connecting = asyncio.Event()

    async def slow_connect(_steps: Steps) -> bytes:
        v4_connecting.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    script = Script({"v4": slow_connect, "v6": answer(b"pw", delay=0.2)})
    r = race(script, stagger=0.01)
    secret = await r.run([target("v4", "srv"), target("v6", "srv")])
    assert secret == Secret(b"pw")
    assert script.started == ["v4", "v6"]
    assert script.cancelled == ["v4"]
    assert "left to a sibling address of srv" in caplog.text
    assert "no connection and TLS handshake" not in caplog.text


async def test_a_sibling_waits_while_another_address_is_through() -> None:
    script = Script({"v4": answer(b"pw", delay=0.2), "v6": hang})
    assert await race(script, stagger=0.01).run([target("v4", "s"), target("v6", "s")])
    assert script.started == ["v4"]
    assert script.handshakes == ["v4"]


async def test_two_of_three_shares_and_the_silent_one_cancelled() -> None:
    payloads = slip39.make_shares(b"threshold pw", 2, 3, bytes(range(16)))
    script = Script({"s1": answer(payloads[0]), "s2": hang, "s3": answer(payloads[2])})
    secret = await race(script, stagger=0.01).run([target("s1"), target("s2"), target("s3")])
    assert secret == Secret(b"threshold pw")
    assert script.cancelled == ["s2"]


async def test_shares_from_the_first_round_count_and_end_turns() -> None:
    """client/main.py's first round kept s1's share: s1 is not asked again, and s2 (stalling
    its handshake) does not hold s3 up."""
    payloads = slip39.make_shares(b"threshold pw", 2, 3, bytes(range(16)))
    kept = Judge(lambda _label, blob: Secret(blob))
    kept.judge("s1", payloads[0])
    script = Script({"s1": answer(payloads[0]), "s2": stall, "s3": answer(payloads[2])})
    r = Race(script.fetch, lambda t, blob: kept.judge(t.label, blob), deadline=30, retry=30,
             stagger=3600, finished=["s1"])  # fmt: skip
    async with asyncio.timeout(10):
        secret = await r.run([target("s1"), target("s2"), target("s3")])
    assert secret == Secret(b"threshold pw")
    assert "s1" not in script.started
    assert script.handshakes == ["s3"]


async def test_a_server_whose_share_is_in_hand_is_not_asked_again() -> None:
    payloads = slip39.make_shares(b"threshold pw", 2, 3, bytes(range(16)))
    script = Script({"s1": answer(payloads[0]), "down": refuse})
    r = race(script, stagger=0.0, retry=0.01)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await r.run([target("s1"), target("down")])
    assert script.started.count("s1") == 1
    assert script.started.count("down") >= 3  # keeps retrying the one that is down


async def test_targets_found_later_join_the_race() -> None:
    async def found() -> object:
        await asyncio.sleep(0.05)
        yield target("late")

    script = Script({"early": refuse, "late": answer(b"pw")})
    r = race(script, stagger=0.01, retry=3600)
    assert await r.run([target("early")], found()) == Secret(b"pw")  # type: ignore[arg-type]


async def test_an_error_finding_servers_leaves_as_itself() -> None:
    """A MandosError from the source of targets (Zeroconf) is not wrapped in a group."""
    from mandos.core.errors import ZeroconfError

    async def broken() -> object:
        if script.started == []:
            raise ZeroconfError("no usable interface")
        yield target("never")  # makes this an async generator

    script = Script({})
    with pytest.raises(ZeroconfError, match="no usable interface"):
        await race(script).run([], broken())  # type: ignore[arg-type]
