"""Settings that would make the server serve nobody are refused at start, in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mandos.core.errors import EX_CONFIG
from tests.ports import free_port


def _run(tmp: Path, *args: str, conf: str = "[DEFAULT]\n") -> subprocess.CompletedProcess[str]:
    configdir = tmp / "conf"
    configdir.mkdir()
    (configdir / "mandos.conf").write_text(conf)
    (configdir / "clients.conf").write_text("")
    argv = [sys.executable, "-m", "mandos.server", "--foreground", "--no-dbus", "--no-zeroconf",
            "--address=127.0.0.1", f"--port={free_port()}", f"--configdir={configdir}",
            f"--statedir={tmp / 'state'}", *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("args", "conf", "needle"),
    [
        (["--priority=NONSENSE:+BOGUS"], "[DEFAULT]\n", "priority"),
        ([], "[DEFAULT]\npriority = SECURE256:+BOGUS\n", "priority"),
        (["--handshake-timeout=PT0S"], "[DEFAULT]\n", "handshake_timeout"),
        ([], "[DEFAULT]\nhandshake_timeout = PT0S\n", "handshake_timeout"),
    ],
)
def test_setting_that_serves_nobody_is_refused(
    tmp_path: Path, args: list[str], conf: str, needle: str
) -> None:
    done = _run(tmp_path, *args, conf=conf)
    assert done.returncode == EX_CONFIG, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("mandos: ")
    assert needle in line
