"""Suite-wide fixtures: every test must leave no child process behind; a world-usable scratch
directory for tests whose processes run as another user."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import live_children


def _children() -> set[int]:
    """PIDs of this process's live (non-zombie) children."""
    return live_children(os.getpid())


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


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A scratch directory every uid can use (plugins run as 65534; pytest's tmp is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="mandos-world-"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
