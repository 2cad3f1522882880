"""Daemon mode: the command returns at once, the daemon serves, SIGTERM ends it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.ports import free_port
from tests.server.conftest import TLSKey, client_section, fetch

SECRET = b"daemon secret"
PID_FILE = Path("/run/mandos.pid")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_daemon_mode_detaches_writes_pid_file_and_serves(tls_key: TLSKey, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "clients.conf").write_text(client_section("c1", tls_key, SECRET))
    port = free_port()
    argv = [sys.executable, "-m", "mandos.server", "--no-dbus", "--no-zeroconf",
            "--address=127.0.0.1", f"--port={port}", f"--configdir={conf}",
            f"--statedir={tmp_path / 'state'}"]  # fmt: skip
    PID_FILE.unlink(missing_ok=True)
    started = subprocess.run(argv, timeout=30, capture_output=True)
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 20
    while not PID_FILE.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(PID_FILE.read_text())
    try:
        assert _alive(pid)  # the daemon, not the process we started (it has exited)
        for _ in range(200):
            with contextlib.suppress(Exception):
                if fetch("127.0.0.1", port, tls_key) == SECRET:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the daemon never served the secret")
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert not _alive(pid)
    assert not PID_FILE.exists()
