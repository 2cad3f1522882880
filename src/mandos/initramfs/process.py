"""What an initramfs program does with its own process: stop signals, stdout, the terminal.

mandos-client, plugin-runner and the plugins share these. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from typing import Any, Final, NoReturn

STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


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
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
    os.kill(os.getpid(), signum)
    sys.exit(128 + signum)  # pragma: no cover - only if the signal is blocked


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
    import termios  # here: mandos-client, which imports this module, never prompts

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
