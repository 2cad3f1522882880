"""Pieces every password plugin shares: prompt texts, finding a daemon, signals, the terminal.

Plugins follow the reference's contract (REFERENCE A13, "WRITING PLUGINS"): print the password
on stdout with no trailing newline, exit 0, handle SIGTERM cleanly, report with sysexits codes.
Only the standard library is imported: these programs run in an initramfs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import termios
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class StopRequested(Exception):
    """A stop signal arrived; unwind, clean up, then :func:`die_by_signal`."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise StopRequested(signum)


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Inside, SIGTERM/INT/HUP raise StopRequested so ``finally`` blocks can clean up."""
    old = {s: signal.signal(s, _raise_stop) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def die_by_signal(signum: int) -> NoReturn:
    """End the process by ``signum`` with its default action, as the reference plugins do."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    sys.exit(128 + signum)  # pragma: no cover - only if the signal is blocked


def crypttab_names(env: Mapping[str, str]) -> tuple[str, str]:
    """(source, target) from CRYPTTAB_SOURCE/cryptsource and CRYPTTAB_NAME/crypttarget."""
    source = env.get("CRYPTTAB_SOURCE") or env.get("cryptsource") or ""
    target = env.get("CRYPTTAB_NAME") or env.get("crypttarget") or ""
    return source, target


def default_prompt(source: str, target: str, tail: str = ": ") -> str:
    """The reference's prompt text for this disk (REFERENCE A14), ending in ``tail``."""
    if not source and not target:
        return f"Enter passphrase to unlock the disk{tail}"
    disk = " ".join(part for part in (source, f"({target})" if target else "") if part)
    return f"Unlocking the disk {disk}\nEnter passphrase{tail}"


def _exe_name(pid_dir: Path) -> str:
    try:
        exe = str((pid_dir / "exe").readlink())
    except OSError:
        return ""
    return Path(exe.removesuffix(" (deleted)")).name


def _comm(pid: int, proc: str) -> str:
    try:
        return (Path(proc) / str(pid) / "comm").read_text().rstrip("\n")
    except OSError:
        return ""


def process_argv(pid: int, proc: str = "/proc") -> list[str]:
    """The argv of a running process, or [] if it is gone or unreadable."""
    try:
        raw = (Path(proc) / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(a) for a in raw.split(b"\0")[:-1]]


def find_process(names: Iterable[str], proc: str = "/proc") -> tuple[int, list[str]] | None:
    """The lowest PID whose executable, argv[0] or comm has one of these names, and its argv.

    The comm name also catches scripts (the kernel names them after the script file).
    """
    wanted = set(names)
    me = os.getpid()
    pids = sorted(int(e.name) for e in Path(proc).iterdir() if e.name.isdigit())
    for pid in pids:
        if pid == me:
            continue
        argv = process_argv(pid, proc)
        first = Path(argv[0]).name if argv else ""
        if first in wanted or _comm(pid, proc) in wanted:
            return pid, argv
        if _exe_name(Path(proc) / str(pid)) in wanted:
            return pid, argv
    return None


def write_all(fd: int, data: bytes) -> None:
    """Write every byte to ``fd`` (pipes may take less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def close_stdout() -> None:
    """Let the reader see end of file now: point fd 1 at /dev/null (Python still owns fd 1)."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)


def read_line_noecho(fd_in: int, fd_prompt: int, prompt: str) -> bytes | None:
    """Show ``prompt`` on ``fd_prompt``, read one line from ``fd_in`` with echo off.

    Returns the line without its final newline, or None at end of input. Terminal settings
    are restored even when a stop signal interrupts the read.
    """
    old: list[Any] | None = None
    if os.isatty(fd_in):
        old = termios.tcgetattr(fd_in)
        new = termios.tcgetattr(fd_in)
        new[3] &= ~termios.ECHO
        new[3] |= termios.ECHONL | termios.ICANON
        termios.tcsetattr(fd_in, termios.TCSAFLUSH, new)
    try:
        write_all(fd_prompt, prompt.encode())
        line = bytearray()
        while True:
            data = os.read(fd_in, 1)
            if not data:
                return bytes(line) if line else None
            if data == b"\n":
                return bytes(line)
            line += data
    finally:
        if old is not None:
            termios.tcsetattr(fd_in, termios.TCSAFLUSH, old)
