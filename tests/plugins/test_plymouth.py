"""The plymouth plugin against Debian's real plymouthd, running headless on a pseudo-terminal."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mandos.plugins.plymouth import DEFAULT_PLYMOUTHD_ARGV, restart_argv

NS_OK = (
    os.geteuid() == 0
    and shutil.which("unshare") is not None
    and Path("/usr/sbin/plymouthd").exists()
    and Path("/usr/bin/plymouth").exists()
)
DRIVER = Path(__file__).with_name("plymouth_ns.py")


def run_in_namespaces(mode: str) -> dict[str, object]:
    r = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--net", "--pid", "--fork",
         "--kill-child", "--mount-proc", sys.executable, str(DRIVER), mode],
        capture_output=True, timeout=120, check=False, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    result: dict[str, object] = json.loads(r.stdout.splitlines()[-1])
    return result


def test_restart_argv() -> None:
    assert restart_argv(["/sbin/plymouthd", "--pid-file=/x"]) == [
        "/sbin/plymouthd",
        "--pid-file=/x",
    ]
    assert restart_argv([])[: len(DEFAULT_PLYMOUTHD_ARGV)] == list(DEFAULT_PLYMOUTHD_ARGV)


def test_not_running_means_unavailable() -> None:
    r = subprocess.run(
        ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--mount",
         sys.executable, "-m", "mandos.plugins.plymouth", "--debug"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 69
    assert b"plymouthd is not running" in r.stderr


@pytest.mark.skipif(not NS_OK, reason="needs root, unshare and Debian's plymouth")
@pytest.mark.slow
def test_asks_real_plymouthd() -> None:
    result = run_in_namespaces("answer")
    assert result["ping"] is True
    assert "Unlocking the disk /dev/vda2 (root)" in str(result["screen"])
    assert (result["code"], result["out"]) == (0, "plymouth secret")


@pytest.mark.skipif(not NS_OK, reason="needs root, unshare and Debian's plymouth")
@pytest.mark.slow
def test_stopped_plugin_restarts_plymouthd_with_its_old_argv() -> None:
    result = run_in_namespaces("restart")
    assert result["code"] == -15
    assert result["restarted"] is True
    argv = result["new_argv"]
    assert isinstance(argv, list)
    assert argv[0] == "/usr/sbin/plymouthd"
    assert "--no-daemon" in argv
    assert "--pid-file=/run/plymouth/pid" in argv
    assert result["ping_after"] is True
