"""The VM test's image builds and boot cases as jobs, run side by side in worker processes.

Rules of this module:
1. A job is one image build or one boot case: a module-level function ``f(work, *needs)`` that
   gets a fresh directory and the results of the jobs it needs, and returns a picklable value
   (a boot case: the line its test prints). Its assertions are its test's: the test only asks
   ``vm_jobs.result(name)``, which returns that value or raises what the job raised (an
   assertion, a skip, an error with the job's traceback as its cause).
2. Jobs run in ``workers()`` processes forked when the session's first VM test sets up, before
   its leftover-process snapshot: pytest's own children are then only the workers, which end
   after the last test. A worker runs one job at a time and fails the job, as the suite's
   autouse check fails a test, if it leaves a child process of the worker behind.
3. A job starts once the jobs it needs have succeeded (their failure is its result), highest
   priority (order in ``JOBS``) first, at most ``workers()`` at a time: guests and image builds
   of every module share both cores, instead of one module's one or two guests at a time.
4. Which jobs run is the session's selection: those a selected test reads, and what they need.
   A job asked for that was not planned (a test selected by other means) is planned then.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import resource
import signal
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from tests.procs import live_children

#: Most workers by default: a guest is 512 MiB and one core (TCG, -smp 1).
MAX_DEFAULT_WORKERS: Final = 4


@dataclass(frozen=True)
class Job:
    """What to run ("module:function"), the jobs whose results it takes, the tests reading it."""

    target: str
    needs: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()


def _case(module: str, function: str, image: str, test: str) -> Job:
    return Job(f"tests.vm.{module}:{function}", (image,), (f"{module}::{test}",))


_DRACUT = "test_dracut_unlocks_and_a_disabled_client_stays_locked"
_TRIXIE = "test_trixie_unlocks_and_a_disabled_client_stays_locked"
_BOOKWORM = "image:bookworm"

#: Every job, highest priority first. The longest chains lead: the dracut image (the slowest
#: build) and its enabled guest (systemd in the initramfs: the slowest boot), then the two
#: boots of the bound disk (one after the other), the crypttab case's mkinitramfs and boot.
JOBS: Final[dict[str, Job]] = {
    "image:dracut": Job("tests.vm.test_boot_dracut:make_dracut"),
    "image:trixie": Job("tests.vm.test_boot_trixie:make_trixie"),
    _BOOKWORM: Job("tests.vm.test_boot:make_vm_setup"),
    "image:threshold": Job("tests.vm.test_threshold_boot:make_threshold", (_BOOKWORM,)),
    "dracut:enabled": _case("test_boot_dracut", "boot_enabled", "image:dracut", _DRACUT),
    "luks:bound": _case("test_luks_boot", "bound_and_rotated", _BOOKWORM,
                        "test_bound_by_mandos_luks_boots_and_again_after_rotate"),
    "luks:crypttab": _case("test_luks_boot", "crypttab_by_bind", _BOOKWORM,
                           "test_crypttab_written_by_bind_boots"),
    "trixie:enabled": _case("test_boot_trixie", "boot_enabled", "image:trixie", _TRIXIE),
    "dracut:disabled": _case("test_boot_dracut", "boot_disabled", "image:dracut", _DRACUT),
    "threshold:one-stopped": _case("test_threshold_boot", "one_stopped", "image:threshold",
                                   "test_two_of_three_with_one_stopped_boots"),
    "boot:late": _case("test_boot", "boot_late_server", _BOOKWORM,
                       "test_client_retries_until_the_server_appears"),
    "boot:enabled": _case("test_boot", "boot_enabled", _BOOKWORM,
                          "test_enabled_client_unlocks_the_root"),
    "boot:zeroconf": _case("test_boot", "boot_zeroconf", _BOOKWORM,
                           "test_zeroconf_over_ipv6_link_local"),
    "trixie:disabled": _case("test_boot_trixie", "boot_disabled", "image:trixie", _TRIXIE),
    "boot:disabled": _case("test_boot", "boot_disabled", _BOOKWORM,
                           "test_disabled_client_leaves_the_root_locked"),
    "threshold:two-stopped": _case("test_threshold_boot", "two_stopped", "image:threshold",
                                   "test_two_of_three_with_two_stopped_stays_at_the_prompt"),
    "payload": _case("test_initramfs_payload", "payload_report", _BOOKWORM,
                     "test_payload_within_both_limits"),
}  # fmt: skip


class JobSkipped(Exception):
    """A job called ``pytest.skip`` (whose exception does not pickle): the test skips."""


class JobFailed(Exception):
    """A job called ``pytest.fail``: the test fails with its message."""


def _function(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


def _worker_started(logdir: str) -> None:
    """In each worker: its output to a file of its own, not into pytest's capture of a test."""
    log = os.open(Path(logdir) / f"worker-{os.getpid()}.log", os.O_WRONLY | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    signal.setitimer(signal.ITIMER_REAL, 0)  # pytest-timeout's alarm is the parent's


def _leftovers(before: set[int]) -> list[int]:
    """The worker's children not in BEFORE, killed after a 2 s grace (as tests/conftest.py)."""
    deadline = time.monotonic() + 2
    leftover = live_children(os.getpid()) - before
    while leftover and time.monotonic() < deadline:
        time.sleep(0.05)
        leftover = live_children(os.getpid()) - before
    for pid in leftover:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return sorted(leftover)


def run_job(target: str, work: Path, args: tuple[Any, ...]) -> Any:
    """In a worker: run TARGET(work, *args); fail it if it leaves a process behind."""
    work.mkdir(parents=True)
    print(f"{time.strftime('%H:%M:%S')} {target} starts in {work}", flush=True)
    before = live_children(os.getpid())
    try:
        result = _function(target)(work, *args)
    except BaseException as exc:
        leftover = _leftovers(before)
        print(f"{time.strftime('%H:%M:%S')} {target} failed: {exc!r}", flush=True)
        if leftover:
            exc.add_note(f"job {target} left processes behind: {leftover}")
        if isinstance(exc, pytest.skip.Exception):
            raise JobSkipped(exc.msg) from None
        if isinstance(exc, pytest.fail.Exception):
            raise JobFailed(exc.msg) from None
        raise
    leftover = _leftovers(before)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"{time.strftime('%H:%M:%S')} {target} ends; the worker's children so far: "
          f"{cpu.ru_utime:.1f} s user, {cpu.ru_stime:.1f} s system", flush=True)  # fmt: skip
    if leftover:
        raise AssertionError(f"job {target} left processes behind: {leftover}")
    return result


class Scheduler:
    """Plans, starts and hands out the jobs (rule 3); ``close`` waits for those running."""

    def __init__(self, jobs: dict[str, Job], base: Path, workers: int) -> None:
        self._jobs = jobs
        self._base = base
        self._workers = workers
        self._planned: list[str] = []  # not started yet, in priority order
        self._running: dict[Future[Any], str] = {}
        self._done: dict[str, Future[Any]] = {}
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_worker_started,
            initargs=(str(base),),
        )

    def plan(self, names: Iterable[str]) -> None:
        """Plan NAMES and what they need; start what can start."""
        wanted: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name not in wanted:
                wanted.add(name)
                stack.extend(self._jobs[name].needs)
        known = set(self._planned) | set(self._running.values()) | set(self._done)
        self._planned.extend(n for n in self._jobs if n in wanted - known)
        self._pump()

    def _pump(self) -> None:
        """Collect finished jobs; settle those whose needs failed; start the ready ones."""
        for future in [f for f in self._running if f.done()]:
            self._done[self._running.pop(future)] = future
        for name in list(self._planned):
            needs = [self._done.get(n) for n in self._jobs[name].needs]
            failed = next((f for f in needs if f is not None and f.exception() is not None), None)
            if failed is not None:
                self._planned.remove(name)
                settled: Future[Any] = Future()
                settled.set_exception(failed.exception())
                self._done[name] = settled
            elif len(self._running) < self._workers and all(f is not None for f in needs):
                self._planned.remove(name)
                args = tuple(f.result() for f in needs if f is not None)
                work = self._base / name.replace(":", "-")
                job = self._pool.submit(run_job, self._jobs[name].target, work, args)
                self._running[job] = name

    def result(self, name: str) -> Any:
        """What job NAME returned, once it has run; what it raised, raised again (rule 1)."""
        self.plan([name])
        while name not in self._done:
            if not self._running:
                raise RuntimeError(f"VM job {name} cannot start: {self._planned}")
            wait(self._running, return_when=FIRST_COMPLETED)
            self._pump()
        try:
            return self._done[name].result()
        except JobSkipped as exc:
            pytest.skip(str(exc))
        except JobFailed as exc:
            pytest.fail(str(exc))

    def close(self) -> None:
        """Start nothing more; wait for the running jobs (each stops what it started)."""
        self._planned.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


def workers() -> int:
    """``MANDOS_VM_JOBS`` if set, else one per usable core (at most MAX_DEFAULT_WORKERS).

    One guest per core: 3 workers on 2 cores used more CPU for the same work (1,017 s against
    891 s with 2, though under more load from others: TCG processes sharing a core evict each
    other's translated code) and were not faster.
    """
    cores = min(len(os.sched_getaffinity(0)), MAX_DEFAULT_WORKERS)
    return max(1, int(os.environ.get("MANDOS_VM_JOBS", cores)))


def selected(items: Iterable[pytest.Item]) -> list[str]:
    """The jobs that the selected tests read (``module::function`` of each item)."""
    tests = {f"{Path(str(item.path)).stem}::{getattr(item, 'originalname', item.name)}"
             for item in items}  # fmt: skip
    return [name for name, job in JOBS.items() if tests & set(job.tests)]
