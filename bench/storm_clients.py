"""Load generator: N Mandos clients, each with its own TLS key, all started at once.

Run as ``python -m bench.storm_clients HOST PORT KEYFILE N``; KEYFILE is JSON
``[[private_pem, public_pem], ...]``. Prints one JSON object: wall time and per-client
latencies (seconds) of those that got a secret, and the number that failed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time

from mandos.adapters.gnutls.session import RawKeyCredentials
from mandos.client.session import AttemptFailed, Timeouts, fetch_encrypted_secret
from mandos.core.config import DEFAULT_PRIORITY


async def _one(host: str, port: int, creds: RawKeyCredentials, start: asyncio.Event) -> float:
    await start.wait()
    began = time.perf_counter()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    await fetch_encrypted_secret(
        family,
        (host, port),
        DEFAULT_PRIORITY,
        creds,
        Timeouts(connect=60, handshake=60, receive=60),
    )
    return time.perf_counter() - began


async def storm(host: str, port: int, keys: list[tuple[str, str]]) -> dict[str, object]:
    creds = [RawKeyCredentials.from_pem(pub.encode(), priv.encode()) for priv, pub in keys]
    start = asyncio.Event()
    tasks = [asyncio.ensure_future(_one(host, port, c, start)) for c in creds]
    await asyncio.sleep(0)
    began = time.perf_counter()
    start.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    wall = time.perf_counter() - began
    latencies = [r for r in results if isinstance(r, float)]
    errors = [str(r) for r in results if isinstance(r, AttemptFailed | OSError)]
    for c in creds:
        c.close()
    return {"wall": wall, "latencies": latencies, "failed": len(results) - len(latencies),
            "errors": errors[:5]}  # fmt: skip


def main() -> int:
    host, port, keyfile, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    with open(keyfile) as f:  # noqa: PTH123
        keys = [tuple(k) for k in json.load(f)][:n]
    print(json.dumps(asyncio.run(storm(host, port, keys))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
