"""Test peer run inside a network namespace: announce or browse, reporting JSON lines on stdout.

    zeroconf_peer.py announce --interface IF --port N [--name NAME] [--no-ipv6]
    zeroconf_peer.py browse [--interface IF] [--no-ipv6]

Each runs until its stdin closes (or SIGTERM), then exits 0.  Lines: {"event": "announced",
"name": ...}, {"event": "renamed", "name": ...}, {"event": "found", "host", "port", "ifindex",
"name"}, {"event": "error", "message"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from mandos.adapters.zeroconf_service import ZeroconfAnnouncer
from mandos.client.discovery import ServerDiscovery
from mandos.core.errors import MandosError


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def until_stdin_closes() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def on_stdin() -> None:
        if not os.read(sys.stdin.fileno(), 512):
            stop.set()

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(sys.stdin.fileno())
        loop.remove_signal_handler(signal.SIGTERM)


async def announce(args: argparse.Namespace) -> None:
    announcer = ZeroconfAnnouncer(
        args.port,
        name=args.name,
        interfaces=args.interface,
        use_ipv6=not args.no_ipv6,
        on_rename=lambda name: emit(event="renamed", name=name),
    )
    async with announcer:
        emit(event="announced", name=announcer.name)
        await until_stdin_closes()


async def browse(args: argparse.Namespace) -> None:
    async with ServerDiscovery(args.interface or None, use_ipv6=not args.no_ipv6) as discovery:

        async def report() -> None:
            async for addr in discovery:
                emit(
                    event="found",
                    host=addr.host,
                    port=addr.port,
                    ifindex=addr.ifindex,
                    name=addr.name,
                )

        emit(event="browsing")
        async with asyncio.TaskGroup() as tg:
            reporter = tg.create_task(report())
            await until_stdin_closes()
            reporter.cancel()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["announce", "browse"])
    parser.add_argument("--interface", action="append", default=[])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default="Mandos")
    parser.add_argument("--no-ipv6", action="store_true")
    args = parser.parse_args(argv)
    try:
        asyncio.run(announce(args) if args.mode == "announce" else browse(args))
    except MandosError as exc:
        emit(event="error", message=str(exc))
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
