"""Debian's real mandos-ctl and mandos-monitor 1.8.16 against our server's D-Bus API.

The reference programs run unchanged from the unpacked package with Debian's python3 (which has
python3-dbus and python3-urwid); our server runs as a real process on a private system bus.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mandos.adapters.gnutls.keys import generate_ed25519_keypair
from tests.interop.reference import PrivateSystemBus, end_session, run_bounded
from tests.server.conftest import TLSKey, client_section, fetch
from tests.server.ourserver import RunningServer, our_server

pytestmark = pytest.mark.interop

PY = "/usr/bin/python3"
SECRET = b"\x85 opaque blob for the ctl test"
KEYWORDS = [
    "Name", "Enabled", "Timeout", "LastCheckedOK", "Created", "Interval", "Host", "KeyID",
    "Fingerprint", "CheckerRunning", "LastEnabled", "ApprovalPending", "ApprovedByDefault",
    "LastApprovalRequest", "ApprovalDelay", "ApprovalDuration", "Checker", "ExtendedTimeout",
    "Expires", "LastCheckerStatus",
]  # fmt: skip


class Ctl:
    """Runs the real mandos-ctl against one bus."""

    def __init__(self, tree: Path, bus: PrivateSystemBus) -> None:
        self.program = tree / "usr/sbin/mandos-ctl"
        self.env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **bus.env}

    def __call__(self, *args: str) -> tuple[int, str, str]:
        done = run_bounded([PY, self.program, *args], env=self.env, timeout=90)
        assert not done.timed_out
        return done.returncode, done.stdout.decode(), done.stderr.decode()

    def ok(self, *args: str) -> str:
        code, out, err = self(*args)
        assert code == 0, err
        return out

    def dump(self, *names: str) -> dict[str, dict[str, Any]]:
        data = json.loads(self.ok("--dump-json", *names))
        assert isinstance(data, dict)
        return data


@pytest.fixture
def key() -> TLSKey:
    return TLSKey(*generate_ed25519_keypair())


@pytest.fixture
def running(
    reference_tree: Path, private_system_bus: PrivateSystemBus, key: TLSKey
) -> Iterator[tuple[Ctl, RunningServer]]:
    conf = client_section(
        "client1", key, SECRET, checker="true", approval_delay="PT60S",
        approved_by_default="False", interval="PT24H",
    ) + "[other.host]\nkey_id = " + "AB" * 32 + "\nsecret = AAAA\nchecker = true\n"  # fmt: skip
    ctl = Ctl(reference_tree, private_system_bus)
    with our_server(conf, use_dbus=True, env=private_system_bus.env) as server:
        deadline = time.monotonic() + 60
        while ctl("--is-enabled", "client1")[0] not in (0, 1):
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.2)
        yield ctl, server


def test_list_verbose_and_json(running: tuple[Ctl, RunningServer], key: TLSKey) -> None:
    ctl, _ = running
    table = ctl.ok().splitlines()
    assert table[0].split() == ["Name", "Enabled", "Timeout", "Last", "Successful", "Check"]
    assert table[1].split()[:3] == ["client1", "Yes", "00:05:00"]
    assert table[2].split()[:3] == ["other.host", "Yes", "00:05:00"]
    verbose = ctl.ok("--verbose", "client1").splitlines()
    for header in ("Key ID", "Check Is Running", "Approval Delay", "Last Checker Status"):
        assert header in verbose[0]
    assert key.key_id in verbose[1]
    data = ctl.dump()
    assert list(data) == ["client1", "other.host"]
    client = data["client1"]
    assert list(client) == KEYWORDS
    assert client["KeyID"] == key.key_id
    assert client["Timeout"] == 300000
    assert client["ApprovalDelay"] == 60000
    assert client["ApprovedByDefault"] is False
    assert client["LastCheckerStatus"] in (-2, 0)
    assert client["Created"]
    assert "+" not in client["Created"]  # naive UTC
    assert "Z" not in client["Created"]


def test_enable_disable_and_settings(running: tuple[Ctl, RunningServer]) -> None:
    ctl, _ = running
    ctl.ok("--disable", "client1")
    assert ctl("--is-enabled", "client1")[0] == 1
    assert ctl.dump("client1")["client1"]["Expires"] == ""
    ctl.ok("--enable", "client1")
    assert ctl("--is-enabled", "client1")[0] == 0
    ctl.ok("--timeout", "PT10M", "--interval", "PT1H", "--host", "elsewhere", "client1")
    ctl.ok("--checker", "exit 0", "--approve-by-default", "client1")
    ctl.ok("--bump-timeout", "client1")
    got = ctl.dump("client1")["client1"]
    assert (got["Timeout"], got["Interval"], got["Host"]) == (600000, 3600000, "elsewhere")
    assert (got["Checker"], got["ApprovedByDefault"]) == ("exit 0", True)
    assert got["LastCheckedOK"] != ""
    ctl.ok("--disable", "--all")
    assert {c["Enabled"] for c in ctl.dump().values()} == {False}


def test_approve_and_deny_a_waiting_client(running: tuple[Ctl, RunningServer], key: TLSKey) -> None:
    ctl, server = running
    for action, expected in (("--approve", SECRET), ("--deny", None)):
        result: list[bytes | None] = []

        def ask(out: list[bytes | None] = result) -> None:
            out.append(fetch(server.host, server.port, key, receive_timeout=90))

        waiter = threading.Thread(target=ask)
        waiter.start()
        try:
            deadline = time.monotonic() + 60
            while not ctl.dump("client1")["client1"]["ApprovalPending"]:
                assert time.monotonic() < deadline, server.log_text()
                time.sleep(0.2)
            assert ctl.dump("client1")["client1"]["LastApprovalRequest"] != ""
            ctl.ok(action, "client1")
        finally:
            waiter.join(120)
        assert result == [expected]
        time.sleep(1.5)  # an approval lasts approval_duration (1 s, REFERENCE A19.7)


def test_remove_and_errors_leave_state_alone(running: tuple[Ctl, RunningServer]) -> None:
    ctl, _ = running
    before = ctl.dump()
    code, _, err = ctl("--enable", "nosuchclient")
    assert code == 1
    assert "Client not found on server: 'nosuchclient'" in err
    assert ctl.dump() == before
    # mandos-ctl itself turns a malformed duration into 0 (its pre-1.6.1 fallback) and sends
    # that; the server then disables the client at once, as the expiry moved into the past.
    code, _, err = ctl("--timeout", "bogus", "other.host")
    assert code == 0
    assert "Parsing as pre-1.6.1 interval instead" in err
    other = ctl.dump("other.host")["other.host"]
    assert (other["Timeout"], other["Enabled"]) == (0, False)
    assert ctl.dump("client1") == {"client1": before["client1"]}
    ctl.ok("--remove", "client1")
    assert list(ctl.dump()) == ["other.host"]
    code, _, err = ctl("--is-enabled", "client1")
    assert code == 1
    assert "Client not found on server: 'client1'" in err


def _tmux(socket: str, *args: str) -> str:
    done = subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout


def _wait_screen(socket: str, pred: Callable[[str], bool], limit: float = 60) -> str:
    deadline = time.monotonic() + limit
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux(socket, "capture-pane", "-p", "-t", "mon")
        if pred(screen):
            return screen
        time.sleep(0.3)
    raise AssertionError(f"mandos-monitor screen never matched:\n{screen}")


def test_monitor_lists_clients_and_follows_changes(
    running: tuple[Ctl, RunningServer], reference_tree: Path, private_system_bus: PrivateSystemBus
) -> None:
    ctl, _ = running
    socket = f"mandos-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "TERM": "xterm", "LANG": "C.UTF-8", **private_system_bus.env}
    monitor = f"{PY} {reference_tree / 'usr/sbin/mandos-monitor'}"
    server_pid = None
    try:
        subprocess.run(
            ["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "mon",
             "-x", "200", "-y", "40", monitor],
            env=env, check=True, timeout=30,
        )  # fmt: skip
        server_pid = int(_tmux(socket, "display-message", "-p", "#{pid}").strip())
        screen = _wait_screen(socket, lambda s: "client1" in s and "other.host" in s)
        assert "Traceback" not in screen
        ctl.ok("--disable", "other.host")
        _wait_screen(socket, lambda s: "other.host: DISABLED" in s)
        ctl.ok("--remove", "other.host")
        _wait_screen(socket, lambda s: "other.host: DISABLED" not in s)
        _tmux(socket, "send-keys", "-t", "mon", "q")
        deadline = time.monotonic() + 30
        while "mon" in _tmux(socket, "list-sessions") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "mon" not in _tmux(socket, "list-sessions")
    finally:
        _tmux(socket, "kill-server")
        if server_pid is not None:
            end_session(server_pid)  # the tmux server is a session leader (setsid)
