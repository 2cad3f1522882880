"""The registry's timer heaps: tick touches only due clients, and behaves as a full scan."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import random
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mandos.core import registry as registry_module
from mandos.core.client_state import ClientState
from mandos.core.effects import Effect, StartChecker
from mandos.core.errors import LocalProtocolError
from mandos.core.registry import Registry
from tests.core.helpers import KEY_A, MIN, SEC, T0, client_config

MANY = 10_000
HOUR = timedelta(hours=1)


def many(n: int = MANY, **changes: object) -> Registry:
    """``n`` clients, each checked every 2 minutes from a random start in the first two."""
    configs = [client_config(f"c{i}", **changes) for i in range(n)]
    return Registry(configs, T0, random.Random(0))


def counting(monkeypatch: pytest.MonkeyPatch, method: str) -> list[ClientState]:
    """Record the client of every call of ``ClientState.<method>``."""
    calls: list[ClientState] = []
    original = getattr(ClientState, method)

    def spy(self: ClientState, *args: object) -> object:
        calls.append(self)
        return original(self, *args)

    monkeypatch.setattr(ClientState, method, spy)
    return calls


def test_tick_touches_only_due_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = many()
    now = T0 + 3 * SEC
    due = {s.name for s in reg.states() if (d := s.next_deadline()) is not None and d <= now}
    assert 0 < len(due) < MANY // 20  # about 3 s / 2 min of them start a checker by now
    ticks = counting(monkeypatch, "tick")
    deadlines = counting(monkeypatch, "next_deadline")
    out = reg.tick(now)
    assert sorted(s.name for s in ticks) == sorted(due)
    assert len(deadlines) == len(due)  # rescheduling each ticked client once
    assert len([e for e in out if isinstance(e, StartChecker)]) == len(due)


def test_idle_registry_costs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = many()
    first = reg.next_deadline()
    assert first is not None
    assert first > T0
    ticks = counting(monkeypatch, "tick")
    deadlines = counting(monkeypatch, "next_deadline")
    assert reg.tick(first - timedelta(microseconds=1)) == []
    assert reg.next_deadline() == first
    assert (ticks, deadlines) == ([], [])


def test_one_command_reschedules_one_client(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = many()
    first = reg.next_deadline()
    assert first is not None
    deadlines = counting(monkeypatch, "next_deadline")
    reg.set_property("c7", "Interval", SEC, T0)
    assert [s.name for s in deadlines] == ["c7"]
    assert reg.next_deadline() == min(first, T0 + SEC)


def test_backward_clock_jump_pulls_every_schedule_back(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = many(100, interval=HOUR)
    ticks = counting(monkeypatch, "tick")
    back = T0 - 2 * HOUR  # the clock went back: every next start is over an interval away
    assert reg.tick(back) == []
    assert len(ticks) == 100
    assert all(s.checker_next_start == back + HOUR for s in reg.states())
    ticks.clear()
    reg.tick(back)
    assert ticks == []


# -- the same behaviour as ticking every client ------------------------------------------------


def scan_tick(reg: Registry, now: datetime) -> list[Effect]:
    """The tick the heaps replace: every client, in order, due or not."""
    out: list[Effect] = []
    for state in reg.states():
        deadline = state.next_deadline()
        if deadline is not None and deadline <= now:
            out += registry_module._tracked(state, functools.partial(state.tick, now))
        else:
            out += state.tick(now)
    return registry_module._finish(out)


def state_of(reg: Registry) -> list[dict[str, object]]:
    return [
        {f.name: getattr(s, f.name) for f in dataclasses.fields(ClientState)} for s in reg.states()
    ]


NAMES = ["a", "b", "c", "d"]


def served(reg: Registry, now: datetime) -> None:
    """Client a fetches its secret (which extends its expiry)."""
    handle, _, _ = reg.begin_request(KEY_A, "::1", now)
    if handle is not None:
        reg.end_request(handle, now, sent=True)


Op = Callable[[Registry, datetime], object]
OPS: dict[str, Op] = {
    "enable": lambda r, n: r.enable("b", n),
    "disable": lambda r, n: r.disable("b", n),
    "approve": lambda r, n: r.approve("c", True, n),
    "checked_ok": lambda r, n: r.checked_ok("a", n),
    "start_checker": lambda r, n: r.start_checker("d", n),
    "checker_done": lambda r, n: r.checker_finished("d", 1, None, n),
    "interval": lambda r, n: r.set_property("a", "Interval", 30 * SEC, n),
    "timeout": lambda r, n: r.set_property("c", "Timeout", 3 * MIN, n),
    "remove": lambda r, n: r.remove("d", n) if "d" in r.names() else None,
    "reload": lambda r, n: r.reload([client_config(x, interval=MIN) for x in NAMES], n),
    "request": lambda r, n: served(r, n),
}


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([*OPS, "tick", "tick", "tick"]),
            st.integers(min_value=-15 * 60, max_value=15 * 60),
        ),
        max_size=25,
    )
)
def test_tick_matches_a_full_scan(steps: list[tuple[str, int]]) -> None:
    reg = Registry([client_config(x) for x in NAMES], T0, random.Random(1))
    now = T0
    for op, seconds in steps:
        now += timedelta(seconds=seconds)  # forwards and backwards
        if op == "tick":
            twin = copy.deepcopy(reg)
            assert reg.tick(now) == scan_tick(twin, now)
            assert state_of(reg) == state_of(twin)
        else:
            with contextlib.suppress(LocalProtocolError):  # a client removed meanwhile
                OPS[op](reg, now)
        deadlines = [d for s in reg.states() if (d := s.next_deadline()) is not None]
        assert reg.next_deadline() == min(deadlines, default=None)


def test_stale_entries_are_compacted() -> None:
    reg = many(10)
    for i in range(1000):  # each change moves the next checker start, leaving stale entries
        reg.set_property("c3", "Interval", (i % 50 + 1) * SEC, T0)
    timers = reg._timers
    assert len(timers._deadlines) + len(timers._rewinds) <= 4 * 10 + 64 + 1
    deadlines = [d for s in reg.states() if (d := s.next_deadline()) is not None]
    assert reg.next_deadline() == min(deadlines)
    assert {s.name for s in reg.states()} == {s.name for _, _, s in timers._deadlines}
