"""askpass-fifo through a real FIFO, as cryptsetup's askpass would write it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

PLUGIN = [sys.executable, "-m", "mandos.plugins.askpass_fifo"]


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_creates_the_fifo_and_passes_the_password_on(tmp_path: Path) -> None:
    fifo = tmp_path / "passfifo"
    proc = subprocess.Popen([*PLUGIN, f"--fifo={fifo}", "--debug"], stdout=subprocess.PIPE)
    try:
        _wait_for(fifo)
        assert stat.S_ISFIFO(fifo.stat().st_mode)
        assert stat.S_IMODE(fifo.stat().st_mode) == 0o600
        fd = os.open(fifo, os.O_WRONLY)  # blocks until the plugin has it open for reading
        os.write(fd, b"fifo pass\nword")
        os.close(fd)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out) == (0, b"fifo pass\nword")


def test_uses_an_existing_fifo_and_ignores_unknown_arguments(tmp_path: Path) -> None:
    fifo = tmp_path / "passfifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen([*PLUGIN, "--fifo", str(fifo), "--whatever"], stdout=subprocess.PIPE)
    try:
        with fifo.open("wb") as f:
            f.write(b"pw")
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out) == (0, b"pw")


def test_a_regular_file_in_the_way_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "passfifo"
    path.write_text("not a fifo")
    r = subprocess.run([*PLUGIN, f"--fifo={path}"], capture_output=True, timeout=60, check=False)
    assert r.returncode == 72
    assert b"is not a FIFO" in r.stderr


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "no" / "passfifo"
    r = subprocess.run([*PLUGIN, f"--fifo={path}"], capture_output=True, timeout=60, check=False)
    assert r.returncode == 72
