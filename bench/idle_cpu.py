"""Idle CPU of our server with many clients: ``python -m bench.idle_cpu [--clients N]``.

Starts the server (no D-Bus, no Zeroconf) with N clients whose checker is ``true`` every
``--interval``, lets it settle, then reads its CPU time (utime+stime of the server and its
reaped checkers, from /proc) over ``--seconds`` with no client connecting. A figure, never an
assertion.
"""

from __future__ import annotations

import argparse
import os
import secrets
import time

from tests.server.ourserver import our_server


def _cpu_seconds(pid: int) -> float:
    """User+system time of ``pid`` and of its waited-for children, in seconds."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: PTH123, SIM115
    ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--interval", default="PT2M")
    parser.add_argument("--checker", default="true")
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    sections = "".join(
        f"[c{i}]\nkey_id = {secrets.token_hex(32)}\nsecret = AAAA\n" for i in range(args.clients)
    )
    conf = f"[DEFAULT]\nchecker = {args.checker}\ninterval = {args.interval}\n\n{sections}"
    with our_server(conf, startup_timeout=120) as server:
        time.sleep(args.settle)
        pid = server.process.pid
        before, started = _cpu_seconds(pid), time.monotonic()
        time.sleep(args.seconds)
        used, elapsed = _cpu_seconds(pid) - before, time.monotonic() - started
    print(
        f"{args.clients} clients, checker {args.checker!r} every {args.interval}: "
        f"{100 * used / elapsed:.1f}% of a core over {elapsed:.0f} s"
    )


if __name__ == "__main__":
    main()
