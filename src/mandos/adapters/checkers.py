"""Checker processes: ``/bin/sh -c COMMAND`` per StartChecker effect, in their own process group.

Each checker runs with cwd ``/``, stdin from ``/dev/null`` and no inherited descriptors, its
output discarded unless ``debug`` is on (REFERENCE A1, A5). When it ends, ``on_exit(name,
returncode, signal)`` is called from the event loop; a stopped checker is killed with its whole
process group (SIGTERM, then SIGKILL after a grace period) and reports nothing. The default
checker, ``fping -q -- HOST``, is answered by one fping run for many clients
(:mod:`mandos.adapters.fping_batch`) with the same outcome per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mandos.adapters.fping_batch import FpingBatcher
from mandos.adapters.tasks import TaskOwner

log = logging.getLogger(__name__)

ExitCallback = Callable[[str, int | None, int | None], None]

KILL_GRACE_SECONDS = 2.0


@dataclass
class _Running:
    process: asyncio.subprocess.Process
    waiter: asyncio.Task[Any]


class CheckerRunner:
    """Starts, watches and kills checker processes, one per client at most."""

    def __init__(
        self, on_exit: ExitCallback, *, debug: bool = False, batch_fping: bool = True
    ) -> None:
        self._on_exit = on_exit
        self._debug = debug
        self._batch = FpingBatcher(on_exit, self._start_process) if batch_fping else None
        self._running: dict[str, _Running] = {}
        self._waiters = TaskOwner("waiting for a checker")
        self._reapers = TaskOwner("killing a checker")

    def is_running(self, name: str) -> bool:
        """Whether a checker of client ``name`` is running."""
        return name in self._running or (self._batch is not None and self._batch.owns(name))

    async def start(self, name: str, command: str) -> None:
        """Start ``command`` for client ``name`` unless one is already running."""
        if self.is_running(name) or (self._batch is not None and self._batch.offer(name, command)):
            return
        await self._start_process(name, command)

    async def _start_process(self, name: str, command: str) -> None:
        output = None if self._debug else subprocess.DEVNULL
        try:
            process = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                command,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            log.warning("Could not start checker for %s: %s", name, exc.strerror)
            self._on_exit(name, None, None)
            return
        self._running[name] = _Running(process, self._waiters.start(self._wait(name, process)))

    async def _wait(self, name: str, process: asyncio.subprocess.Process) -> None:
        status = await process.wait()
        running = self._running.get(name)
        if running is None or running.process is not process:
            return
        del self._running[name]
        if status < 0:
            self._on_exit(name, None, -status)
        else:
            self._on_exit(name, status, None)

    def stop(self, name: str) -> None:
        """Kill the checker of ``name`` (its whole process group); it reports nothing."""
        if self._batch is not None:
            self._batch.drop(name)
        running = self._running.pop(name, None)
        if running is None:
            return
        running.waiter.cancel()
        self._reapers.start(_kill_group(running.process))

    async def aclose(self) -> None:
        """Kill every checker and wait until all are reaped."""
        if self._batch is not None:
            await self._batch.aclose()
        for name in list(self._running):
            self.stop(name)
        await self._waiters.aclose()
        await self._reapers.join()


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the process group, SIGKILL it after a grace period, and reap the leader."""
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        async with asyncio.timeout(KILL_GRACE_SECONDS):
            await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        await process.wait()
    # Children of the shell may outlive it; the group is ours alone, so finish it off.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
