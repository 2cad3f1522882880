"""A Mandos server stand-in for namespace tests: MandosPeer on [::] plus a Zeroconf announcement.

    python -m tests.client.ns_server --interface IF --secret-file FILE

Prints one JSON line {"event": "announced", "port": N}, then serves until stdin closes or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from mandos.adapters.zeroconf_service import ZeroconfAnnouncer
from tests.client.peer import MandosPeer, Reply


async def serve(interface: str, secret: bytes) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), stop.set)  # readable at EOF: the test is done
    peer = MandosPeer([Reply("secret", secret)], host="::")
    # The announcer is made after the peer is entered, so the port is known by then.
    async with peer, ZeroconfAnnouncer(peer.port, interfaces=[interface]):
        print(json.dumps({"event": "announced", "port": peer.port}), flush=True)
        await stop.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interface", required=True)
    parser.add_argument("--secret-file", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.interface, args.secret_file.read_bytes()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
