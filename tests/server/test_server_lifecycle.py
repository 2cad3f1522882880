"""Checkers and persistent state, with our server as a real process and real checker commands."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path

from mandos.adapters.gnutls.keys import generate_ed25519_keypair
from tests.server.conftest import TLSKey, client_section, fetch
from tests.server.ourserver import our_server

SECRET = b"opaque secret bytes"


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_failing_checker_disables_the_client_after_timeout(tls_key: TLSKey) -> None:
    conf = client_section("c1", tls_key, SECRET, checker="exit 1", interval="PT1S", timeout="PT2S")
    with our_server(conf) as server:
        server.wait_for_log("Disabling client c1", timeout=30)
        assert fetch(server.host, server.port, tls_key) is None
        assert "Checker for c1 failed" in server.log_text()


def test_succeeding_checker_keeps_the_client_enabled(tls_key: TLSKey) -> None:
    conf = client_section("c1", tls_key, SECRET, checker="true", interval="PT1S", timeout="PT2S")
    with our_server(conf) as server:
        server.wait_for_log("Checker for c1 succeeded")
        _sleep(4)
        assert "Disabling client c1" not in server.log_text()
        assert fetch(server.host, server.port, tls_key) == SECRET


def test_checker_expands_runtime_values_shell_quoted(tls_key: TLSKey, tmp_path: Path) -> None:
    out = tmp_path / "out"
    conf = client_section(
        "c1", tls_key, SECRET, host="a host;x", interval="PT1S", checker=f"echo %%(host)s > {out}"
    )
    with our_server(conf) as server:
        server.wait_for_log("Checker for c1 succeeded")
        assert out.read_text() == "a host;x\n"


def _processes_with(marker: str) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [line for line in ps.stdout.splitlines() if marker in line and "ps -eo" not in line]


def test_hanging_checker_is_killed(tls_key: TLSKey) -> None:
    marker = f"{1000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 997}"
    conf = client_section(
        "c1", tls_key, SECRET, checker=f"sleep {marker}", interval="PT1S", timeout="PT2S"
    )
    with our_server(conf) as server:
        server.wait_for_log(f"Starting checker 'sleep {marker}'")
        assert _processes_with(f"sleep {marker}")
        server.wait_for_log("Disabling client c1", timeout=30)
        deadline = time.monotonic() + 10
        while _processes_with(f"sleep {marker}") and time.monotonic() < deadline:
            _sleep(0.1)
        assert not _processes_with(f"sleep {marker}")


def test_state_survives_a_restart(tls_key: TLSKey, tmp_path: Path) -> None:
    conf = client_section("c1", tls_key, SECRET, checker="exit 1", interval="PT1S", timeout="PT2S")
    state = tmp_path / "state"
    state.mkdir()
    with our_server(conf, statedir=state) as server:
        server.wait_for_log("Disabling client c1", timeout=30)
    saved = json.loads((state / "clients.json").read_text())
    assert saved["version"] == 1
    assert SECRET.decode() not in json.dumps(saved)
    with our_server(conf, statedir=state) as server:
        assert fetch(server.host, server.port, tls_key) is None  # still disabled
    with our_server(conf, statedir=state, extra_args=["--no-restore"]) as server:
        assert fetch(server.host, server.port, tls_key) == SECRET


def test_kill_9_never_loses_the_state_file(tls_key: TLSKey, tmp_path: Path) -> None:
    conf = client_section("c1", tls_key, SECRET, checker="exit 1", interval="PT1S", timeout="PT2S")
    state = tmp_path / "state"
    state.mkdir()
    with our_server(conf, statedir=state) as server:
        server.wait_for_log("Disabling client c1", timeout=30)
        _sleep(1.5)  # the save after the change (at most one per second)
        server.signal(signal.SIGKILL)
        server.process.wait(10)
    saved = json.loads((state / "clients.json").read_text())
    assert saved["clients"]["c1"]["enabled"] is False
    assert [p.name for p in state.iterdir()] == ["clients.json"]
    with our_server(conf, statedir=state) as server:
        assert fetch(server.host, server.port, tls_key) is None


def test_corrupt_state_file_is_reported_and_set_aside(tls_key: TLSKey, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "clients.json").write_text("{garbage")
    with our_server(client_section("c1", tls_key, SECRET), statedir=state) as server:
        log = server.wait_for_log("is corrupt")
        assert fetch(server.host, server.port, tls_key) == SECRET
    assert len([line for line in log.splitlines() if "is corrupt" in line]) == 1
    assert any(p.name.startswith("clients.json.bad-") for p in state.iterdir())


def test_sighup_reloads_clients_conf(tls_key: TLSKey) -> None:
    other = TLSKey(*generate_ed25519_keypair())
    with our_server(client_section("c1", tls_key, SECRET)) as server:
        assert fetch(server.host, server.port, other) is None
        conf = client_section("c1", tls_key, SECRET) + client_section("c2", other, b"two")
        (server.configdir / "clients.conf").write_text(conf)
        server.signal(signal.SIGHUP)
        server.wait_for_log("Reloaded clients.conf")
        assert fetch(server.host, server.port, other) == b"two"
        assert server.process.poll() is None


def test_bad_clients_conf_on_sighup_keeps_the_old_clients(tls_key: TLSKey) -> None:
    with our_server(client_section("c1", tls_key, SECRET)) as server:
        bad = client_section("c1", tls_key, SECRET, timeout="PT5X")
        (server.configdir / "clients.conf").write_text(bad)
        server.signal(signal.SIGHUP)
        server.wait_for_log("Not reloading clients.conf")
        assert fetch(server.host, server.port, tls_key) == SECRET
