"""TaskOwner: keeps its tasks, logs a failure without touching the others, ends them all."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mandos.adapters.tasks import TaskOwner


async def test_failure_is_logged_and_siblings_carry_on(caplog: pytest.LogCaptureFixture) -> None:
    owner = TaskOwner("doing a test thing")
    sibling_done = asyncio.Event()

    async def fails() -> None:
        raise RuntimeError("boom")

    async def carries_on() -> None:
        await asyncio.sleep(0.05)
        sibling_done.set()

    owner.start(fails())
    owner.start(carries_on())
    await owner.join()
    assert sibling_done.is_set()
    assert len(owner) == 0
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "Internal error while doing a test thing"
    assert record.exc_info is not None


async def test_aclose_cancels_and_waits_oldest_first_listing() -> None:
    owner = TaskOwner("sleeping")
    ended: list[int] = []

    async def sleeper(n: int) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            ended.append(n)

    tasks = [owner.start(sleeper(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert list(owner) == tasks
    await owner.aclose()
    assert sorted(ended) == [0, 1, 2]
    assert all(t.cancelled() for t in tasks)
    assert len(owner) == 0
