"""Start every planned plugin at once, collect their output, and let the first success win.

Rules:
- Each plugin gets its own stdout pipe; stdin and stderr are the runner's. Pipes are read as
  data arrives (a plugin writing megabytes never blocks), and at most ``output_cap`` bytes are
  kept: a plugin that writes more is stopped and counts as failed (a truncated password would
  be a wrong one).
- Exits are seen through pidfds, so there is no SIGCHLD handler and no polling.
- The first plugin to exit 0 wins. A plugin that exits with EX_TEMPFAIL (75) is started again
  after ``restart_delay`` seconds (beyond the reference).
- Whatever happens (a winner, every plugin failed, SIGTERM/SIGINT/HUP to the runner, an
  exception), every plugin still running gets SIGTERM, then SIGKILL after ``term_grace``
  seconds, and every one is reaped before :func:`race` returns.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

from mandos.core.errors import EX_TEMPFAIL
from mandos.initramfs.process import STOP_SIGNALS
from mandos.plugin_runner.plan import Launch, merged_env

DEFAULT_OUTPUT_CAP = 1 << 20

DebugFn = Callable[[str], None]


def _open_executable(path: str) -> tuple[int, str]:
    """(fd or -1, what to execute): the open file, as the reference's fexecve() does.

    Opened while still privileged, so plugins.d may be mode 0700 although plugins run as 65534.
    """
    try:
        file_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1, path
    executable = f"/proc/self/fd/{file_fd}"
    if not os.path.exists(executable):  # noqa: PTH110 - no /proc
        return file_fd, path
    return file_fd, executable


@dataclass(frozen=True, slots=True)
class RaceSettings:
    """Tunables of one race; the defaults suit an initramfs."""

    term_grace: float = 5.0
    restart_delay: float = 1.0
    output_cap: int = DEFAULT_OUTPUT_CAP


@dataclass(slots=True)
class Outcome:
    """How the race ended: the winner and its output, or why there was none."""

    winner: str | None = None
    output: bytes = b""
    signal: int | None = None
    timeline: list[tuple[float, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Running:
    launch: Launch
    proc: subprocess.Popen[bytes]
    pidfd: int
    out_fd: int
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    overflowed: bool = False


def _noop_debug(_msg: str) -> None:
    return None


class _Race:
    def __init__(
        self,
        launches: Sequence[Launch],
        base_env: Mapping[str, str],
        settings: RaceSettings,
        debug: DebugFn,
    ) -> None:
        self.launches = launches
        self.base_env = base_env
        self.settings = settings
        self.debug = debug
        self.sel = selectors.DefaultSelector()
        self.running: dict[int, _Running] = {}  # by pidfd
        self.restarts: list[tuple[float, Launch]] = []
        self.outcome = Outcome()
        self.t0 = time.monotonic()
        self.as_root = os.geteuid() == 0

    def note(self, event: str) -> None:
        self.outcome.timeline.append((time.monotonic() - self.t0, event))

    def _credentials(self, launch: Launch) -> tuple[int | None, int | None, list[int] | None]:
        """(user, group, extra groups) for Popen: the plan's as root, else our own (None)."""
        if self.as_root:
            return launch.uid, launch.gid, []
        if (launch.uid, launch.gid) != (os.getuid(), os.getgid()):
            self.debug(f"Not root: plugin {launch.name} runs as uid {os.getuid()}")
        return None, None, None

    def spawn(self, launch: Launch) -> None:
        user, group, groups = self._credentials(launch)
        file_fd, executable = _open_executable(launch.path)
        try:
            proc = subprocess.Popen(  # noqa: S603 - the admin's own plugin directory
                list(launch.argv),
                executable=executable,
                stdout=subprocess.PIPE,
                env=merged_env(self.base_env, launch),
                pass_fds=(file_fd,) if file_fd >= 0 else (),
                user=user,
                group=group,
                extra_groups=groups,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            sys.stderr.write(f"plugin-runner: cannot start plugin {launch.name}: {exc}\n")
            self.note(f"{launch.name}:unstartable")
            return
        finally:
            if file_fd >= 0:
                os.close(file_fd)
        self._watch(launch, proc)

    def _watch(self, launch: Launch, proc: subprocess.Popen[bytes]) -> None:
        """Register the started plugin's exit (pidfd) and output pipe with the selector."""
        assert proc.stdout is not None
        out_fd = proc.stdout.fileno()
        os.set_blocking(out_fd, False)
        pidfd = os.pidfd_open(proc.pid)
        run = _Running(launch, proc, pidfd, out_fd)
        self.running[pidfd] = run
        self.sel.register(pidfd, selectors.EVENT_READ, ("exit", run))
        self.sel.register(out_fd, selectors.EVENT_READ, ("out", run))
        self.debug(f"Plugin {launch.name} started (PID {proc.pid})")
        self.note(f"{launch.name}:start({proc.pid})")

    def read_output(self, run: _Running) -> bool:
        """Read what the pipe holds now; False once it is at EOF (and closed)."""
        while True:
            try:
                data = os.read(run.out_fd, 65536)
            except BlockingIOError:
                return True
            except OSError as exc:  # pragma: no cover - EIO and the like
                if exc.errno == errno.EINTR:
                    continue
                data = b""
            if not data:
                self.sel.unregister(run.out_fd)
                assert run.proc.stdout is not None
                run.proc.stdout.close()
                run.out_fd = -1
                return False
            if run.overflowed:
                continue
            run.size += len(data)
            if run.size > self.settings.output_cap:
                run.overflowed = True
                run.chunks.clear()
                sys.stderr.write(
                    f"plugin-runner: plugin {run.launch.name} wrote more than "
                    f"{self.settings.output_cap} bytes; stopping it\n"
                )
                with contextlib.suppress(ProcessLookupError):
                    run.proc.send_signal(signal.SIGTERM)
                continue
            run.chunks.append(data)

    def reap(self, run: _Running) -> int:
        code = run.proc.wait()
        if run.out_fd >= 0:
            self.read_output(run)  # everything it wrote before exiting is in the pipe
            if run.out_fd >= 0:  # a grandchild still holds the pipe open: stop listening
                self.sel.unregister(run.out_fd)
                assert run.proc.stdout is not None
                run.proc.stdout.close()
                run.out_fd = -1
        self.sel.unregister(run.pidfd)
        os.close(run.pidfd)
        del self.running[run.pidfd]
        return code

    def on_exit(self, run: _Running) -> None:
        code = self.reap(run)
        name = run.launch.name
        if code < 0:
            self.debug(f"Plugin {name} [PID {run.proc.pid}] killed by signal {-code}")
            self.note(f"{name}:signal{-code}")
        else:
            self.debug(f"Plugin {name} [PID {run.proc.pid}] exited with status {code}")
            self.note(f"{name}:exit{code}")
        if code == 0 and not run.overflowed and self.outcome.winner is None:
            self.outcome.winner = name
            self.outcome.output = b"".join(run.chunks)
            self.note(f"{name}:won")
        elif code == EX_TEMPFAIL:
            self.restarts.append((time.monotonic() + self.settings.restart_delay, run.launch))

    def done(self) -> bool:
        return self.outcome.signal is not None or self.outcome.winner is not None

    def loop(self, wake_fd: int | None) -> None:
        for launch in self.launches:
            self.spawn(launch)
        if wake_fd is not None:
            self.sel.register(wake_fd, selectors.EVENT_READ, ("wake", None))
        while not self.done() and (self.running or self.restarts):
            now = time.monotonic()
            due = [launch for when, launch in self.restarts if when <= now]
            self.restarts = [(when, ln) for when, ln in self.restarts if when > now]
            for launch in due:
                self.spawn(launch)
            timeout = min((when for when, _ in self.restarts), default=now + 3600) - now
            for key, _mask in self.sel.select(max(timeout, 0.0)):
                kind, run = key.data
                if kind == "wake":
                    with contextlib.suppress(BlockingIOError):
                        os.read(key.fd, 64)
                elif kind == "out" and run.out_fd == key.fd:
                    self.read_output(run)
                elif kind == "exit" and run.pidfd in self.running:
                    self.on_exit(run)
                if self.done():
                    return

    def stop_all(self) -> None:
        """SIGTERM every plugin still running, SIGKILL after the grace period, reap all."""
        for run in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                run.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.term_grace
        while self.running:
            left = deadline - time.monotonic()
            if left <= 0:
                for run in self.running.values():
                    with contextlib.suppress(ProcessLookupError):
                        run.proc.kill()
                for run in list(self.running.values()):
                    self.debug(f"Plugin {run.launch.name} [PID {run.proc.pid}] killed")
                    self.reap(run)
                    self.note(f"{run.launch.name}:killed")
                break
            for key, _mask in self.sel.select(left):
                kind, run = key.data
                if kind == "out" and run.out_fd == key.fd:
                    self.read_output(run)
                elif kind == "exit" and run.pidfd in self.running:
                    self.reap(run)
                    self.note(f"{run.launch.name}:stopped")
                elif kind == "wake":
                    with contextlib.suppress(BlockingIOError):
                        os.read(key.fd, 64)
        self.sel.close()


@contextlib.contextmanager
def _stop_signals(outcome: Outcome) -> Iterator[int | None]:
    """While inside, SIGTERM/INT/HUP are recorded in ``outcome`` and wake the selector."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def handler(signum: int, _frame: FrameType | None) -> None:
        if outcome.signal is None:
            outcome.signal = signum

    old = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    old_wake = signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
    try:
        yield rfd
    finally:
        signal.set_wakeup_fd(old_wake)
        for s, h in old.items():
            signal.signal(s, h)
        os.close(rfd)
        os.close(wfd)


def race(
    launches: Sequence[Launch],
    base_env: Mapping[str, str],
    settings: RaceSettings | None = None,
    debug: DebugFn = _noop_debug,
) -> Outcome:
    """Run the plugins until one exits 0 (or all fail, or a stop signal arrives); reap them all."""
    r = _Race(launches, base_env, settings or RaceSettings(), debug)
    with _stop_signals(r.outcome) as wake_fd:
        try:
            r.loop(wake_fd)
        finally:
            r.stop_all()
    return r.outcome


def format_timeline(timeline: Sequence[tuple[float, str]]) -> str:
    """One line: ``+0.000s name:start(pid) +0.120s name:exit0 ...``."""
    return " ".join(f"+{t:.3f}s {event}" for t, event in timeline)
