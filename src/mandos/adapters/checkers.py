"""Checker processes: ``/bin/sh -c COMMAND`` per StartChecker effect, in their own process group.

Each checker runs with cwd ``/``, stdin from ``/dev/null`` and no inherited descriptors
(REFERENCE A1, A5). Its output is read, keeping only the last non-empty line (for
``mandos-ctl --explain``), and passed on to our standard error with ``debug`` only. When it ends,
``on_exit(name, returncode, signal)`` is called from the event loop; a stopped checker is
killed with its whole process group (SIGTERM, then SIGKILL after a grace period) and reports
nothing. The default checker, ``fping -q -- HOST``, is answered by one fping run for many
clients (:mod:`mandos.adapters.fping_batch`) with the same outcome per client.
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
OUTPUT_LINE_MAX = 200
#: After the checker exits, how long a child it left behind may hold its output open.
OUTPUT_DRAIN_SECONDS = 0.2


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
        self._last_output: dict[str, str] = {}

    def last_output(self, name: str) -> str | None:
        """The last non-empty line a checker of ``name`` printed (None: none yet)."""
        return self._last_output.get(name)

    def is_running(self, name: str) -> bool:
        """Whether a checker of client ``name`` is running."""
        return name in self._running or (self._batch is not None and self._batch.owns(name))

    async def start(self, name: str, command: str) -> None:
        """Start ``command`` for client ``name`` unless one is already running."""
        if self.is_running(name) or (self._batch is not None and self._batch.offer(name, command)):
            return
        await self._start_process(name, command)

    async def _start_process(self, name: str, command: str) -> None:
        tail = _OutputTail(echo=self._debug)
        try:
            process = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                command,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=tail.write_fd,
                stderr=tail.write_fd,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            tail.close()
            log.warning("Could not start checker for %s: %s", name, exc.strerror)
            self._on_exit(name, None, None)
            return
        tail.started(lambda line: self._last_output.__setitem__(name, line))
        self._running[name] = _Running(
            process, self._waiters.start(self._wait(name, process, tail))
        )

    async def _wait(
        self, name: str, process: asyncio.subprocess.Process, tail: _OutputTail
    ) -> None:
        try:
            status = await process.wait()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(OUTPUT_DRAIN_SECONDS):
                    await tail.eof.wait()
        finally:
            tail.close()
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


class _OutputTail:
    """A pipe for a checker's output, read in the loop; keeps only the last non-empty line.

    Not asyncio's subprocess pipes: ``Process.wait()`` would then also wait for every child
    the checker left behind holding the pipe (``sleep 60 &``).
    """

    def __init__(self, *, echo: bool = False) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self._echo = echo
        os.set_blocking(self.read_fd, False)
        self.eof = asyncio.Event()
        self._partial = b""
        self._on_line: Callable[[str], None] = lambda _line: None
        self._open = True

    def started(self, on_line: Callable[[str], None]) -> None:
        """The checker holds the write end now: close ours and start reading."""
        os.close(self.write_fd)
        self.write_fd = -1
        self._on_line = on_line
        asyncio.get_running_loop().add_reader(self.read_fd, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self.read_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._line(self._partial)
            self.close()
            return
        if self._echo:  # --debug: the checker's output goes to our terminal, as it did
            with contextlib.suppress(OSError):
                os.write(2, chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        self._partial = self._partial[-OUTPUT_LINE_MAX * 4 :]
        for line in reversed(lines):
            if self._line(line):
                break

    def _line(self, raw: bytes) -> bool:
        text = raw.decode(errors="replace").strip()
        if text:
            self._on_line(text[:OUTPUT_LINE_MAX])
        return bool(text)

    def close(self) -> None:
        """Stop reading and release the pipe (idempotent)."""
        if not self._open:
            return
        self._open = False
        self.eof.set()
        with contextlib.suppress(RuntimeError, ValueError):
            asyncio.get_running_loop().remove_reader(self.read_fd)
        with contextlib.suppress(OSError):
            os.close(self.read_fd)
        if self.write_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.write_fd)


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
