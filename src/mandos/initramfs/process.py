"""What an initramfs program does with its own process: stop signals, stdout, the terminal.

mandos-client, plugin-runner and the plugins share these. Standard library only.
"""

from __future__ import annotations

import os
import sys

from mandos.initramfs import signals

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from types import FrameType, TracebackType
    from typing import Any, Final, NoReturn

STOP_SIGNALS: Final = (signals.SIGTERM, signals.SIGINT, signals.SIGHUP)


class StopRequested(Exception):
    """A stop signal arrived; unwind, clean up, then :func:`die_by_signal`."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise StopRequested(signum)


class stop_signals_raise:  # used as a function; not contextlib (see signals.py)
    """``with stop_signals_raise():`` inside, SIGTERM/INT/HUP raise StopRequested so
    ``finally`` blocks can clean up; the previous handlers are put back at the end."""

    def __enter__(self) -> None:
        self._old = {s: signals.handle(s, _raise_stop) for s in STOP_SIGNALS}

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for s, h in self._old.items():
            signals.handle(s, h)


def die_by_signal(signum: int) -> NoReturn:
    """End the process by ``signum`` with its default action, as the reference plugins do."""
    signals.handle(signum, signals.SIG_DFL)
    signals.unblock(signum)
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
