"""Suite-wide fixtures: every test must leave no child process behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


def _children() -> set[int]:
    """PIDs of this process's live (non-zombie) children."""
    me = os.getpid()
    kids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces, so split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == me and fields[0] != "Z":
            kids.add(int(entry.name))
    return kids


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    before = _children()
    yield
    leftover = _children() - before
    if leftover:
        import signal
        import time

        deadline = time.monotonic() + 2
        while leftover and time.monotonic() < deadline:
            time.sleep(0.05)
            leftover = _children() - before
        for pid in leftover:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if leftover:
            pytest.fail(f"test left processes behind: {sorted(leftover)}")
