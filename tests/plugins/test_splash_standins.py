"""usplash and splashy plugins against minimal stand-ins.

usplash and splashy left Debian long ago, so these tests use small stand-in daemons that speak
the documented protocols: usplash reads NUL-terminated commands from ``usplash_fifo`` and answers
``INPUTQUIET`` on ``usplash_outfifo``; ``splashy_update "getpass PROMPT"`` prints the answer.
Each test runs in its own PID namespace, so restarted daemons are reaped with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NS_OK = os.geteuid() == 0 and shutil.which("unshare") is not None
pytestmark = pytest.mark.skipif(not NS_OK, reason="needs root and unshare for a PID namespace")

USPLASH = """#!{py} -I
import os, sys
d = sys.argv[1]
for name in ("usplash_fifo", "usplash_outfifo"):
    if not os.path.exists(os.path.join(d, name)):
        os.mkfifo(os.path.join(d, name))
with open(os.path.join(d, "usplash.started"), "a") as f:
    f.write(" ".join(sys.argv) + "\\n")
while True:
    with open(os.path.join(d, "usplash_fifo"), "rb") as f:
        data = f.read()
    for cmd in data.split(b"\\0")[:-1]:
        with open(os.path.join(d, "usplash.log"), "ab") as log:
            log.write(cmd + b"\\n")
        if cmd.startswith(b"INPUTQUIET "):
            with open(os.path.join(d, "usplash_outfifo"), "wb") as out:
                out.write(b"usplash secret")
"""

SPLASHY = """#!/bin/sh
echo "$0 $*" >> {d}/splashy.started
sleep 300  # not exec: the process must keep the name "splashy"
"""

SPLASHY_UPDATE = """#!/bin/sh
echo "$*" >> {d}/splashy.log
[ -e {d}/hang ] && exec sleep 300
printf 'splashy secret'
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def _in_pid_ns(script: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c", script],
        capture_output=True, timeout=90, check=False, cwd=Path(__file__).parents[2],
    )  # fmt: skip


def _wait_file(path: Path) -> str:
    return f"i=0; while [ ! -e {path} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done"


def test_usplash_protocol(world_dir: Path) -> None:
    usplash = _write(world_dir / "usplash", USPLASH.format(py=sys.executable))
    script = f"""
{usplash} {world_dir} &
{_wait_file(world_dir / "usplash_outfifo")}
export CRYPTTAB_NAME=root
{sys.executable} -m mandos.plugins.usplash --fifo-dir={world_dir} > {world_dir}/out
echo "code=$?"
"""
    r = _in_pid_ns(script)
    assert r.stdout.split() == [b"code=0"], r.stderr
    assert (world_dir / "out").read_bytes() == b"usplash secret"
    assert (world_dir / "usplash.log").read_text().splitlines() == [
        "TIMEOUT 0",
        "INPUTQUIET Unlocking the disk (root) Enter passphrase: ",
    ]


def test_usplash_not_running(world_dir: Path) -> None:
    r = _in_pid_ns(f"{sys.executable} -m mandos.plugins.usplash --fifo-dir={world_dir}")
    assert r.returncode == 69


def test_splashy_protocol_and_restart_when_killed(world_dir: Path) -> None:
    splashy = _write(world_dir / "splashy", SPLASHY.format(d=world_dir))
    update = _write(world_dir / "splashy_update", SPLASHY_UPDATE.format(d=world_dir))
    plugin = (f"{sys.executable} -m mandos.plugins.splashy --splashy={splashy} "
              f"--splashy-update={update}")  # fmt: skip
    script = f"""
{splashy} first &
{_wait_file(world_dir / "splashy.started")}
cryptsource=/dev/sdz {plugin} > {world_dir}/out; echo "code=$?"
touch {world_dir}/hang
{plugin} & P=$!
{_wait_file(world_dir / "hang")}; sleep 1
kill -TERM $P; wait $P; echo "killed=$?"
sleep 1
"""
    r = _in_pid_ns(script)
    assert r.stdout.split() == [b"code=0", b"killed=143"], r.stderr
    assert (world_dir / "out").read_bytes() == b"splashy secret"
    log = (world_dir / "splashy.log").read_text().splitlines()
    assert log[0] == "getpass Unlocking the disk /dev/sdz Enter passphrase: "
    started = (world_dir / "splashy.started").read_text().splitlines()
    assert started == [f"{splashy} first", f"{splashy} boot"]
