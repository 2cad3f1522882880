"""MandosServer in-process: its tasks end when told to, whatever else happens in the same step."""

from __future__ import annotations

import asyncio
import random
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mandos.adapters import statefile
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


async def test_saver_writes_in_a_thread_and_the_last_save_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 10,000-client state takes a while to write and fsync: not in the event loop's thread,
    and never an older state written after the last one."""
    server = _server(tmp_path)
    registry = Registry((), datetime.now(UTC), random.Random(1))
    writes: list[tuple[bytes, int]] = []
    release = threading.Event()

    def slow_save(_path: Path, data: bytes) -> None:
        if not writes:
            release.wait(5)  # the first write is still going when the server stops
        writes.append((data, threading.get_ident()))

    monkeypatch.setattr(statefile, "save", slow_save)
    monkeypatch.setattr(server, "_dump", lambda _registry: b"newer" if writes else b"older")
    server._save_wanted.set()
    task = asyncio.create_task(server._saver(registry))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.wait({task})
    assert server._writing is not None
    waiting = asyncio.create_task(asyncio.wait({server._writing}))
    release.set()
    await waiting
    server._save_now(registry)  # what run() does last, after waiting as above
    assert [data for data, _ in writes] == [b"older", b"newer"]
    assert writes[0][1] != threading.get_ident()
