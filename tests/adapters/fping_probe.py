"""Run the default checker for many clients through CheckerRunner and print each outcome.

``python -m tests.adapters.fping_probe batch|single HOST...``: one client per HOST (``cN``), the
checker ``fping -q -- %(host)s`` expanded as the server does; ``batch`` lets the runner batch the
fping checkers, ``single`` runs one ``/bin/sh -c`` per client. Prints one JSON object: client ->
[host, returncode, signal]. Run inside a network namespace by tests/adapters/test_fping_batch.py.
"""

from __future__ import annotations

import asyncio
import json
import sys

from mandos.adapters.checkers import CheckerRunner
from mandos.core.checker_command import expand_runtime
from mandos.core.config import DEFAULT_CHECKER


async def probe(batch: bool, hosts: list[str]) -> dict[str, list[object]]:
    """Start every client's checker at once; wait for all of them to report."""
    results: dict[str, list[object]] = {}
    done = asyncio.Event()

    def on_exit(name: str, returncode: int | None, signum: int | None) -> None:
        results[name] = [hosts[int(name[1:])], returncode, signum]
        if len(results) == len(hosts):
            done.set()

    runner = CheckerRunner(on_exit, batch_fping=batch)
    try:
        for i, host in enumerate(hosts):
            await runner.start(f"c{i}", expand_runtime(DEFAULT_CHECKER, {"host": host}))
        async with asyncio.timeout(60):
            await done.wait()
    finally:
        await runner.aclose()
    return results


def main(argv: list[str]) -> int:
    """Print the outcomes as JSON; 0."""
    results = asyncio.run(probe(argv[0] == "batch", argv[1:]))
    sys.stdout.write(json.dumps(results, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
