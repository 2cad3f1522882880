"""askpass-fifo: read the passphrase from cryptsetup's FIFO, creating it if needed.

REFERENCE A14: the FIFO is ``/lib/cryptsetup/passfifo`` (what cryptsetup's askpass and
``cryptroot-unlock`` write to). The reference takes no options and ignores its arguments; we
add ``--fifo=PATH`` (for tests) and ``--debug``, and still ignore anything else. Everything a
writer sends until it closes the FIFO is the password (at most 1 MiB).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from mandos.core.errors import EX_IOERR, EX_OK, EX_OSFILE
from mandos.initramfs.process import write_all

PROG = "askpass-fifo"
DEFAULT_FIFO = "/lib/cryptsetup/passfifo"
MAX_PASSWORD = 1 << 20


def _options(args: Sequence[str]) -> tuple[str, bool]:
    fifo, debug = DEFAULT_FIFO, False
    it = iter(args)
    for arg in it:
        if arg.startswith("--fifo="):
            fifo = arg.removeprefix("--fifo=")
        elif arg == "--fifo":
            fifo = next(it, fifo)
        elif arg == "--debug":
            debug = True
    return fifo, debug


def ensure_fifo(path: str) -> None:
    """Create the FIFO (mode 0600) unless a FIFO is already there; OSError otherwise."""
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        if not stat.S_ISFIFO(Path(path).stat().st_mode):
            raise FileExistsError(f"{path} exists and is not a FIFO") from None


def read_fifo(path: str, limit: int = MAX_PASSWORD) -> bytes:
    """Wait for a writer, then read until it closes the FIFO (up to ``limit`` bytes)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
            size += len(data)
        if size > limit:
            raise OSError(f"more than {limit} bytes written to {path}")
        return b"".join(chunks)
    finally:
        os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: print what arrives through the FIFO; returns a sysexits code."""
    fifo, debug = _options(sys.argv[1:] if argv is None else argv)
    try:
        ensure_fifo(fifo)
    except OSError as exc:
        sys.stderr.write(f"{PROG}: cannot create FIFO {fifo}: {exc.strerror or exc}\n")
        return EX_OSFILE
    if debug:
        sys.stderr.write(f"{PROG}: waiting for a password on {fifo}\n")
    try:
        password = read_fifo(fifo)
        write_all(1, password)
    except OSError as exc:
        sys.stderr.write(f"{PROG}: {exc.strerror or exc}\n")
        return EX_IOERR
    return EX_OK


if __name__ == "__main__":
    sys.exit(main())
