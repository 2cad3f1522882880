"""Load generator for Tang: N key recoveries at once, each over its own connection.

``python -m bench.tang_clients HOST PORT KID BODYFILE N``: every client sends the request
``clevis decrypt`` sends to recover a key (``POST /rec/KID`` with an ephemeral ECMR public key
as JWK, HTTP/1.1, ``Connection: close``) and reads the whole answer; one counts as served when
the answer is ``200`` with a JWK. Prints one JSON object: wall time, per-request latencies
(seconds) of those served, and the number that failed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def _one(host: str, port: int, request: bytes, start: asyncio.Event) -> float:
    await start.wait()
    began = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        # By Content-Length: the connection may stay open after tangd has answered.
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = await reader.readexactly(length)
    finally:
        writer.close()
    if not head.startswith(b"HTTP/1.1 200") or b'"kty"' not in body:
        raise ValueError(head[:40].decode("ascii", "replace"))
    return time.perf_counter() - began


async def storm(host: str, port: int, kid: str, body: bytes, n: int) -> dict[str, object]:
    """Run ``n`` recoveries at once; wall time, latencies, failures."""
    request = (
        f"POST /rec/{kid} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/jwk+json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    start = asyncio.Event()
    tasks = [asyncio.ensure_future(_one(host, port, request, start)) for _ in range(n)]
    await asyncio.sleep(0)
    began = time.perf_counter()
    start.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    wall = time.perf_counter() - began
    latencies = [r for r in results if isinstance(r, float)]
    errors = [repr(r) for r in results if not isinstance(r, float)]
    return {"wall": wall, "latencies": latencies, "failed": len(errors), "errors": errors[:5]}


def main() -> int:
    host, port, kid, bodyfile, n = sys.argv[1:6]
    with open(bodyfile, "rb") as f:  # noqa: PTH123
        body = f.read()
    print(json.dumps(asyncio.run(storm(host, int(port), kid, body, int(n)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
