"""What the scheduler pays per wake-up with many idle clients: ``tick`` and ``next_deadline``.

Run as ``.venv/bin/python -m bench.registry_timers [--clients N ...] [--rounds R]``. Each
round ticks at a time when nothing is due (the scheduler woken by a D-Bus call or a burst of
changes), then asks for the next deadline; the full scan that the heaps replaced is timed
alongside for comparison.
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from mandos.core.config import ClientConfig
from mandos.core.registry import Registry
from mandos.core.values import ClientName, KeyId, Secret

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def registry(n: int) -> Registry:
    """``n`` clients with the default 2-minute checker interval, started at T0."""
    configs = [
        ClientConfig(ClientName(f"c{i}"), Secret(b"x"), KeyId(f"{i:064X}")) for i in range(n)
    ]
    return Registry(configs, T0, random.Random(0))


def scan(reg: Registry, now: datetime) -> datetime | None:
    """The old way: look at every client (what a tick with nothing due used to cost)."""
    for state in reg.states():
        state.tick(now)
    deadlines = (s.next_deadline() for s in reg.states())
    return min((d for d in deadlines if d is not None), default=None)


def idle_wakeup(reg: Registry, now: datetime) -> datetime | None:
    """What the scheduler does on each wake-up."""
    reg.tick(now)
    return reg.next_deadline()


def per_call_us(call: Callable[[], object], rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        call()
    return (time.perf_counter() - start) / rounds * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.registry_timers")
    parser.add_argument("--clients", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args(argv)
    print(f"{'clients':>8} {'tick+next (us)':>15} {'full scan (us)':>15}")
    for n in args.clients:
        reg = registry(n)
        first = reg.next_deadline()
        assert first is not None
        idle = first - timedelta(microseconds=1)  # nothing due yet
        heap = per_call_us(functools.partial(idle_wakeup, reg, idle), args.rounds)
        full = per_call_us(functools.partial(scan, reg, idle), max(1, args.rounds // 20))
        print(f"{n:>8} {heap:>15.1f} {full:>15.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
