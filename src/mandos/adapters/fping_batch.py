"""Batched fping: the default checker of many clients answered by one ``fping`` run.

Rules of this module: a checker command is taken here only if, after runtime expansion, it is
exactly ``fping -q -- HOST`` with HOST one word of the characters ``shlex.quote`` leaves bare
(so ``/bin/sh -c`` would run ``fping`` with exactly the arguments ``-q``, ``--``, HOST). That
command asks one question: is HOST alive (exit 0) or unreachable (exit 1)? fping(8) answers the
same question for many targets in one run, printing ``HOST is alive`` or ``HOST is unreachable``
per target when ``-q`` is not given, with the same probes (retries, timeouts) per target. So the
hosts whose checkers start within one window go to one ``fping -- H1 H2 ...`` and each client
gets the exit status its own process would have had. Anything that run cannot answer (a host
with no line, e.g. a name that does not resolve, or an fping that failed or was not found) is
checked the ordinary way, one ``/bin/sh -c`` per client, so the outcome is the reference's in
every case; any other checker command never comes here. Stopping a client's checker drops it
from its batch (it reports nothing); a run with no client left is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from mandos.adapters.tasks import TaskOwner

log = logging.getLogger(__name__)

#: How long the first checker of a batch waits for others to join it (seconds).
BATCH_WINDOW: Final = 0.5
#: At most this many hosts in one fping run (its -i 10 ms pacing makes a run last ~10 ms/host).
MAX_HOSTS: Final = 256

# ``shlex.quote`` leaves a word bare iff it matches this (ASCII \w), so the shell passes it as is.
_COMMAND = re.compile(r"fping -q -- ([\w@%+=:,./-]+)", re.ASCII)
_RESULT = re.compile(rb"^(\S+) is (alive|unreachable)\b", re.MULTILINE)

ExitCallback = Callable[[str, int | None, int | None], None]
Fallback = Callable[[str, str], Awaitable[None]]


def fping_host(command: str) -> str | None:
    """The host of a checker command that is exactly ``fping -q -- HOST``, else None."""
    match = _COMMAND.fullmatch(command)
    if match is None or match.group(1).startswith("-"):
        return None
    return match.group(1)


def parse_results(output: bytes) -> dict[str, int]:
    """Host -> the exit status ``fping -q -- HOST`` has (0 alive, 1 unreachable)."""
    return {
        m.group(1).decode("ascii", "replace"): 0 if m.group(2) == b"alive" else 1
        for m in _RESULT.finditer(output)
    }


@dataclass(eq=False)
class _Run:
    """One fping run: the clients (name -> host) still waiting for its answer."""

    waiting: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task[object] | None = field(default=None, repr=False)


class FpingBatcher:
    """Collects ``fping -q -- HOST`` checkers for a window and answers them with one run."""

    def __init__(
        self,
        on_exit: ExitCallback,
        fallback: Fallback,
        *,
        window: float = BATCH_WINDOW,
        max_hosts: int = MAX_HOSTS,
    ) -> None:
        self._on_exit = on_exit
        self._fallback = fallback
        self._window = window
        self._max_hosts = max_hosts
        self._pending: dict[str, str] = {}
        self._flush_at: asyncio.TimerHandle | None = None
        self._runs: dict[str, _Run] = {}
        self._tasks = TaskOwner("running a batched fping checker")
        #: fping runs started so far (for tests and benchmarks).
        self.runs_started = 0

    def owns(self, name: str) -> bool:
        """Whether a batched checker of ``name`` is waiting or running."""
        return name in self._pending or name in self._runs

    def offer(self, name: str, command: str) -> bool:
        """Take ``command`` for ``name`` into the next batch; False if it is not batchable."""
        host = fping_host(command)
        if host is None:
            return False
        self._pending[name] = host
        if len({*self._pending.values()}) >= self._max_hosts:
            self._flush()
        elif self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(self._window, self._flush)
        return True

    def drop(self, name: str) -> None:
        """Forget ``name``'s checker: it reports nothing; a run nobody waits for is killed."""
        self._pending.pop(name, None)
        run = self._runs.pop(name, None)
        if run is None:
            return
        del run.waiting[name]
        if not run.waiting and run.process is not None:
            with contextlib.suppress(ProcessLookupError):
                run.process.kill()

    async def aclose(self) -> None:
        """Drop every checker, kill every run and wait for them to end."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        self._pending.clear()
        for name in list(self._runs):
            self.drop(name)
        await self._tasks.join()

    def _flush(self) -> None:
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        if not self._pending:
            return
        run = _Run(self._pending)
        self._pending = {}
        for name in run.waiting:
            self._runs[name] = run
        run.task = self._tasks.start(self._run(run))

    async def _run(self, run: _Run) -> None:
        results: dict[str, int] = {}
        fping = shutil.which("fping")
        if fping is not None:
            results = await self._ask(run, fping, sorted(set(run.waiting.values())))
        for name, host in list(run.waiting.items()):
            if self._runs.get(name) is not run:
                continue  # stopped meanwhile
            del self._runs[name]
            status = results.get(host)
            if status is None:
                await self._fallback(name, f"fping -q -- {host}")
            else:
                self._on_exit(name, status, None)

    async def _ask(self, run: _Run, fping: str, hosts: list[str]) -> dict[str, int]:
        """Run fping over ``hosts``; the per-host answers it gave (empty if it failed)."""
        self.runs_started += 1
        try:
            process = await asyncio.create_subprocess_exec(
                fping,
                "--",
                *hosts,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            log.warning("Could not start fping for %d checkers: %s", len(hosts), exc.strerror)
            return {}
        run.process = process
        if not run.waiting:  # every client was stopped while it started
            process.kill()
        try:
            output, _ = await process.communicate()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        # fping(8): 0 all alive, 1 some unreachable, 2 some address not found; 3 and 4 mean
        # bad arguments or a failed system call, and its per-host lines cannot be trusted.
        if process.returncode not in (0, 1, 2):
            return {}
        return parse_results(output)
