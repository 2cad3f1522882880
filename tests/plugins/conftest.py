"""Fixtures for the plugin tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A scratch directory every uid can use (plugins run as 65534; pytest's tmp is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="mandos-pl-"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
