"""Load generator: N Mandos clients at once, each retrying as ``mandos-client`` does.

Run as ``python -m bench.storm_clients HOST PORT KEYFILE N [--procs P] [--give-up S]``; KEYFILE
is JSON ``[[private_pem, public_pem], ...]`` and client i uses key ``i % len(keys)``. The N
sessions are spread over P processes (default: one per core), so that the load generator is
not one Python process holding 10,000 sessions; all of them start at the same instant. Each
session is a real TLS handshake with ``mandos-client``'s time limits (10 s to connect, 10 s for
the handshake) and, like ``mandos-client``, tries again 10 s (``--retry``) after a failed
attempt, until ``--give-up`` seconds after the start. Prints one JSON object: wall time (start
to the last secret), per-client latencies (seconds from the start) of those that got a secret,
the number that never did, the number of failed attempts, and a few of their errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time

from mandos.adapters.gnutls.session import RawKeyCredentials
from mandos.client.args import DEFAULT_RETRY
from mandos.client.session import AttemptFailed, Timeouts, fetch_encrypted_secret
from mandos.core.config import DEFAULT_PRIORITY

#: mandos-client's own limits per attempt (client/attempt.py's defaults).
TIMEOUTS = Timeouts()
START_MARGIN = 2.0  # seconds for the worker processes to load their keys before the start


async def _client(
    address: tuple[str, int], creds: RawKeyCredentials, start: float, args: argparse.Namespace
) -> tuple[float | None, list[str]]:
    """Seconds from ``start`` to this client's secret (None: never), and its failures."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    failures: list[str] = []
    while True:
        try:
            await fetch_encrypted_secret(family, address, DEFAULT_PRIORITY, creds, TIMEOUTS)
            return time.monotonic() - start, failures
        except (AttemptFailed, OSError, TimeoutError) as exc:
            failures.append(f"{exc.__class__.__name__}: {exc}")
        if time.monotonic() + args.retry - start > args.give_up:
            return None, failures
        await asyncio.sleep(args.retry)


async def _worker(args: argparse.Namespace, keys: list[list[str]]) -> dict[str, object]:
    """This process's share of the clients (every ``procs``-th from ``shard``)."""
    mine = range(args.shard, args.n, args.procs)
    creds = {}
    for k in {i % len(keys) for i in mine}:
        private, public = (pem.encode() for pem in keys[k])
        creds[k] = RawKeyCredentials.from_pem(public, private)
    await asyncio.sleep(max(0.0, args.start - time.monotonic()))
    address = (args.host, args.port)
    results = await asyncio.gather(
        *(_client(address, creds[i % len(keys)], args.start, args) for i in mine)
    )
    for c in creds.values():
        c.close()
    latencies = [lat for lat, _ in results if lat is not None]
    failures = [f for _, fs in results for f in fs]
    return {"latencies": latencies, "failed": len(results) - len(latencies),
            "attempts_failed": len(failures), "errors": failures[:5]}  # fmt: skip


def _spread(args: argparse.Namespace) -> dict[str, object]:
    """Start the worker processes, wait for them, and merge their figures."""
    start = time.monotonic() + START_MARGIN  # CLOCK_MONOTONIC is one clock for all processes
    common = [args.host, str(args.port), args.keyfile, str(args.n), f"--procs={args.procs}",
              f"--retry={args.retry}", f"--give-up={args.give_up}", f"--start={start}"]  # fmt: skip
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.storm_clients", *common, "--shard", str(shard)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for shard in range(args.procs)
    ]
    parts = [json.loads(w.communicate()[0]) for w in workers]
    latencies = sorted(lat for p in parts for lat in p["latencies"])
    return {
        "wall": latencies[-1] if latencies else float("nan"),
        "latencies": latencies,
        "failed": sum(p["failed"] for p in parts),
        "attempts_failed": sum(p["attempts_failed"] for p in parts),
        "errors": [e for p in parts for e in p["errors"]][:5],
        "procs": args.procs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("keyfile")
    parser.add_argument("n", type=int)
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--retry", type=float, default=DEFAULT_RETRY)
    parser.add_argument("--give-up", type=float, default=300.0)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)  # worker: the start
    parser.add_argument("--shard", type=int, help=argparse.SUPPRESS)  # worker: which clients
    args = parser.parse_args()
    args.procs = max(1, min(args.procs, args.n))
    if args.shard is None:
        result = _spread(args)
    else:
        with open(args.keyfile) as f:  # noqa: PTH123
            result = asyncio.run(_worker(args, json.load(f)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
