"""Checker CPU at many clients: ``python -m bench.checker_cpu`` (as root, from the repository).

Starts our server (no D-Bus, no Zeroconf) with N clients (``--clients``, default 10,000) whose
host is 127.0.0.1 and whose checker runs every ``--interval`` (default PT2M, the default), lets it
settle, then reads the CPU time of the server and of its reaped checkers (utime, stime, cutime,
cstime from /proc) over ``--seconds``. Two variants, one after the other:

- ``batched``: the default checker ``fping -q -- %%(host)s``: one fping run per 0.5 s window;
- ``per-process``: ``fping -q  -- %%(host)s`` (two spaces: the same command for the shell, but
  not the exact default, so every check is a ``/bin/sh -c`` and an fping of its own, as before).

Prints figures only; asserts nothing. Needs fping.
"""

from __future__ import annotations

import argparse
import os
import secrets
import time
from pathlib import Path

from bench.server_storm import our_server

VARIANTS = {"batched": "fping -q -- %%(host)s", "per-process": "fping -q  -- %%(host)s"}


def cpu_seconds(pid: int) -> float:
    """User+system time of ``pid`` and of its waited-for children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def clients_conf(count: int, checker: str, interval: str) -> str:
    """``count`` clients on 127.0.0.1 with ``checker`` every ``interval``."""
    sections = "".join(
        f"[c{i}]\nkey_id = {secrets.token_hex(32)}\nsecret = AAAA\n" for i in range(count)
    )
    head = f"[DEFAULT]\nchecker = {checker}\ninterval = {interval}\nhost = 127.0.0.1\n"
    return f"{head}\n{sections}"


def measure(count: int, checker: str, interval: str, settle: float, seconds: float) -> float:
    """Percent of one core the server and its checkers used over ``seconds``."""
    with our_server(clients_conf(count, checker, interval)) as server:
        time.sleep(settle)
        before, began = cpu_seconds(server.pid), time.monotonic()
        time.sleep(seconds)
        used, elapsed = cpu_seconds(server.pid) - before, time.monotonic() - began
    return 100 * used / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--interval", default="PT2M")
    parser.add_argument("--settle", type=float, default=15.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    print(f"{args.clients} clients on 127.0.0.1, checker every {args.interval}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for name in args.variants.split(","):
        share = measure(args.clients, VARIANTS[name], args.interval, args.settle, args.seconds)
        print(f"{name:>12}: {share:5.1f}% of one core (server + checkers, {args.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
