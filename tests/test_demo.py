"""scripts/demo.py end to end (without install-deps): keys, LUKS image, server, plugin-runner."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "scripts" / "demo.py"

requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="cryptsetup needs root")


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mandos_demo", DEMO)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("mandos-demo-*")}


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (the demo's temporary directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry.name))
    return found


@requires_root
def test_demo_unlocks_the_image(capsys: pytest.CaptureFixture[str]) -> None:
    before = leftovers()
    assert load_demo().main([]) == 0
    out = capsys.readouterr().out
    assert "6/6 Unlocking the LUKS image with that password ... done" in out
    assert out.rstrip().splitlines()[-1].startswith("SUCCESS:")
    assert leftovers() <= before


@requires_root
def test_interrupted_demo_cleans_up() -> None:
    """SIGINT while the server runs: exit 130, no process and no temporary directory left."""
    before = leftovers()
    proc = subprocess.Popen(
        [sys.executable, str(DEMO)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("4/6"):
                break
        new = leftovers() - before
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode in (0, 130), err  # it may have finished before the signal landed
    assert leftovers() <= before
    for name in new:
        assert processes_mentioning(name) == []
