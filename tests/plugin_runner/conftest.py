"""Fixtures for running plugin-runner and plugins as real processes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

MakePlugin = Callable[..., Path]


@pytest.fixture
def plugin_dir(world_dir: Path) -> Path:
    d = world_dir / "plugins.d"
    d.mkdir()
    d.chmod(0o755)
    return d


@pytest.fixture
def make_plugin(plugin_dir: Path) -> MakePlugin:
    """Write an executable /bin/sh plugin into the plugin directory."""

    def make(name: str, body: str, mode: int = 0o755) -> Path:
        path = plugin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(mode)
        return path

    return make


def pid_gone(pid: int) -> bool:
    """True if no process (not even a zombie) has this PID."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
