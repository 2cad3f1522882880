"""usplash: ask for the passphrase through a running usplash (deprecated, as in the reference).

usplash's documented protocol (usplash_write(8)): each command is a NUL-terminated line written
to ``/dev/.initramfs/usplash_fifo``; the answer to an ``INPUT*`` command is read from
``/dev/.initramfs/usplash_outfifo`` until usplash closes it. We send ``TIMEOUT 0`` (no boot
timeout while asking) and ``INPUTQUIET prompt`` (no echo). If stopped, we kill usplash and start
it again with its old argv, as the reference does, so that the question leaves the screen.
``--fifo-dir=DIR`` (beyond the reference) moves the FIFOs, for tests.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from mandos.core.errors import EX_IOERR, EX_OK, EX_UNAVAILABLE
from mandos.initramfs.process import StopRequested, die_by_signal, stop_signals_raise, write_all
from mandos.plugins._common import (
    crypttab_names,
    default_prompt,
    find_process,
    kill_and_wait,
    respawn,
)

PROG = "usplash"
FIFO_DIR = "/dev/.initramfs"
MAX_PASSWORD = 1 << 20


def _options(args: Sequence[str]) -> tuple[str, bool]:
    fifo_dir, debug = FIFO_DIR, False
    for arg in args:
        if arg.startswith("--fifo-dir="):
            fifo_dir = arg.removeprefix("--fifo-dir=")
        elif arg == "--debug":
            debug = True
    return fifo_dir, debug


def send_command(fifo: str, command: str) -> None:
    """Write one NUL-terminated command to usplash's command FIFO."""
    fd = os.open(fifo, os.O_WRONLY | os.O_CLOEXEC)
    try:
        write_all(fd, command.encode() + b"\0")
    finally:
        os.close(fd)


def read_answer(outfifo: str) -> bytes:
    """Read usplash's answer until it closes the output FIFO."""
    fd = os.open(outfifo, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks: list[bytes] = []
        while sum(map(len, chunks)) <= MAX_PASSWORD:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)
    finally:
        os.close(fd)


def restart(pid: int, argv: Sequence[str], name: str) -> None:
    """Kill the splash daemon ``pid`` and start ``argv`` again in its own session."""
    kill_and_wait(pid)
    if argv:
        respawn(argv, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; prints the password usplash returns, or fails if usplash is not running."""
    fifo_dir, debug = _options(sys.argv[1:] if argv is None else argv)
    found = find_process({"usplash"})
    if found is None:
        if debug:
            sys.stderr.write(f"{PROG}: usplash is not running\n")
        return EX_UNAVAILABLE
    pid, old_argv = found
    prompt = default_prompt(*crypttab_names(os.environ)).replace("\n", " ")
    try:
        with stop_signals_raise():
            send_command(f"{fifo_dir}/usplash_fifo", "TIMEOUT 0")
            send_command(f"{fifo_dir}/usplash_fifo", f"INPUTQUIET {prompt}")
            answer = read_answer(f"{fifo_dir}/usplash_outfifo")
    except StopRequested as stop:
        restart(pid, old_argv, PROG)
        die_by_signal(stop.signum)
    except OSError as exc:
        sys.stderr.write(f"{PROG}: {exc.strerror}\n")
        return EX_IOERR
    write_all(1, answer)
    return EX_OK


if __name__ == "__main__":
    sys.exit(main())
