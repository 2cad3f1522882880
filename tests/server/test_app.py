"""MandosServer in-process: its tasks end when told to, whatever else happens in the same step."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from pathlib import Path

from mandos.core.config import ServerConfig
from mandos.core.registry import Registry
from mandos.server.app import MandosServer


def _server(tmp_path: Path) -> MandosServer:
    config = ServerConfig(statedir=str(tmp_path), use_dbus=False, zeroconf=False)
    return MandosServer(config, lambda: ())


async def test_scheduler_ends_when_cancelled_in_the_step_it_is_woken(tmp_path: Path) -> None:
    """gh-86296: asyncio.wait_for swallowed this cancellation and the scheduler ran on."""
    server = _server(tmp_path)
    registry = Registry((), datetime.now(UTC), random.Random(1))
    for _ in range(20):
        task = asyncio.create_task(server._scheduler(registry))
        await asyncio.sleep(0.01)  # the scheduler now waits for a wake-up
        server._wake.set()  # a checker finished ...
        task.cancel()  # ... in the same step as SIGTERM
        done, _ = await asyncio.wait({task}, timeout=1)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=1)
        assert done, "the scheduler kept running after it was cancelled"
        assert task.cancelled()
