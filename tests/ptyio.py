"""Reading a pseudo-terminal's master side in tests."""

from __future__ import annotations

import os
import select
import time


def read_until(fd: int, needle: bytes, timeout: float = 30) -> bytes:
    """Everything read from ``fd`` until ``needle`` shows up, the fd closes, or ``timeout``."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            try:
                seen += os.read(fd, 1024)
            except OSError:  # EIO once the slave side is closed
                break
    return seen
