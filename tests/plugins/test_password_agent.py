"""password-agent: the systemd password-agent protocol, against Debian's systemd-ask-password."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mandos.core.errors import UsageError
from mandos.plugins.password_agent import AgentConfig, parse_args, parse_ask

AGENT = [sys.executable, "-m", "mandos.plugins.password_agent"]
HAVE_NS = os.geteuid() == 0 and shutil.which("unshare") is not None
SAP = shutil.which("systemd-ask-password")


def test_parse_args_defaults_and_client_command() -> None:
    assert parse_args([]) == AgentConfig()
    c = parse_args(["--user=1", "--group", "2", "--agent-dir=/a", "/c", "--pubkey=x", "--debug"])
    assert (c.user, c.group, c.agent_dir) == (1, 2, "/a")
    assert c.client == ("/c", "--pubkey=x", "--debug")
    assert not c.debug
    assert parse_args(["--", "--odd-client", "-x"]).client == ("--odd-client", "-x")
    for bad in (["--user=nobody"], ["--group=²"], ["--user=4294967295"], ["--user="]):
        with pytest.raises(UsageError, match="is not a numeric ID"):
            parse_args(bad)


def test_parse_ask_file() -> None:
    text = "[Ask]\nPID=12\nSocket=/run/x/sck.1\nAcceptCached=0\nEcho=0\nNotAfter=99\nMessage=Hi\n"
    q = parse_ask("/run/x/ask.a", text)
    assert q is not None
    assert (q.socket, q.pid, q.not_after, q.message) == ("/run/x/sck.1", 12, 99, "Hi")
    assert parse_ask("p", "[Other]\nSocket=/s\n") is None
    assert parse_ask("p", "[Ask]\nSocket=relative\n") is None
    assert parse_ask("p", "[Ask]\nSocket=/s\nPID=abc\n") is None


def _client(dir_: Path, body: str) -> Path:
    path = dir_ / "client"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def _question(
    agent_dir: Path, name: str, not_after: int = 0, pid: int | None = None
) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(agent_dir / f"sck.{name}"))
    sock.settimeout(30)
    pid = os.getpid() if pid is None else pid
    (agent_dir / f"ask.{name}").write_text(
        f"[Ask]\nPID={pid}\nSocket={agent_dir}/sck.{name}\nNotAfter={not_after}\nMessage=m\n"
    )
    return sock


def test_answers_every_open_question(world_dir: Path) -> None:
    agent_dir = world_dir / "ask"
    agent_dir.mkdir()
    live = [_question(agent_dir, n) for n in ("a", "b")]
    expired = _question(agent_dir, "old", not_after=1)
    (agent_dir / "ask.broken").write_text("garbage")
    client = _client(world_dir, f'echo "$@" > {world_dir}/args; printf "pw\\0bin"')
    try:
        r = subprocess.run(
            [*AGENT, f"--agent-directory={agent_dir}", "--debug", "--", str(client), "--x=1"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert [s.recv(4096) for s in live] == [b"+pw\0bin", b"+pw\0bin"]
        expired.setblocking(False)
        with pytest.raises(BlockingIOError):
            expired.recv(4096)
        assert (world_dir / "args").read_text() == "--x=1\n"
    finally:
        for s in [*live, expired]:
            s.close()


def test_client_is_stopped_when_questions_vanish(world_dir: Path) -> None:
    agent_dir = world_dir / "ask"
    agent_dir.mkdir()
    sock = _question(agent_dir, "q")
    client = _client(world_dir, f"echo $$ > {world_dir}/client.pid; exec sleep 300")
    proc = subprocess.Popen(
        [*AGENT, f"--agent-directory={agent_dir}", str(client)], stderr=subprocess.PIPE
    )
    try:
        pid_file = world_dir / "client.pid"
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        (agent_dir / "ask.q").unlink()  # answered elsewhere (the console)
        deadline = time.monotonic() + 30
        client_pid = int(pid_file.read_text())
        while time.monotonic() < deadline:
            try:
                os.kill(client_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the client was not stopped")
        assert proc.poll() is None  # still waiting for the next question
        proc.terminate()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
        sock.close()
    assert proc.returncode == -15


def test_failing_client_is_an_error(world_dir: Path) -> None:
    agent_dir = world_dir / "ask"
    agent_dir.mkdir()
    sock = _question(agent_dir, "q")
    try:
        r = subprocess.run(
            [*AGENT, f"--agent-directory={agent_dir}", str(_client(world_dir, "exit 1"))],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        sock.close()
    assert r.returncode == 69
    assert b"failed with status 1" in r.stderr


DRIVER = """
set -u
mount -t tmpfs tmpfs /run/systemd/ask-password
{agent} --user=65534 --group=65534 --helper-directory=/my/helpers -- {client} --one --two=2 &
AGENT=$!
sleep 0.5
systemd-ask-password --no-tty --timeout=60 "Please enter passphrase for disk root:" > {out}
echo "sap=$?"
wait $AGENT
echo "agent=$?"
"""


@pytest.mark.skipif(not HAVE_NS or SAP is None, reason="needs root, unshare and systemd")
def test_against_systemd_ask_password(world_dir: Path) -> None:
    """A private mount namespace gives us our own /run/systemd/ask-password (systemd 252's
    systemd-ask-password has no option to move it); a PID namespace reaps everything."""
    out = world_dir / "sap.out"
    # A Python client: /bin/sh would drop the effective uid itself when it differs from the real.
    client = world_dir / "client"
    client.write_text(
        f"#!{sys.executable} -I\nimport os, sys\n"
        "r, e, _ = os.getresuid(); g = os.getresgid()[0]\n"
        f"with open('{world_dir}/seen', 'w') as f:\n"
        "    h = os.environ['MANDOSPLUGINHELPERDIR']\n"
        "    f.write(f\"{r}:{g}:{e} {h} {' '.join(sys.argv[1:])}\\n\")\n"
        "sys.stdout.write('s3cret pass')\n"
    )
    client.chmod(0o755)
    script = DRIVER.format(agent=" ".join(AGENT), client=client, out=out)
    r = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
         "--mount-proc", "sh", "-c", script],
        capture_output=True, timeout=90, check=False,
    )  # fmt: skip
    assert r.stdout.split() == [b"sap=0", b"agent=0"], r.stderr
    assert out.read_bytes() == b"s3cret pass\n"
    assert (world_dir / "seen").read_text() == "65534:65534:0 /my/helpers --one --two=2\n"
