"""Our D-Bus extensions (org.mandos_py.Server1) through our mandos-ctl: --unknown, --explain,
and the audit trail naming a D-Bus caller's uid."""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
from pathlib import Path

from mandos.adapters.gnutls.keys import generate_ed25519_keypair
from tests.audit.test_server_audit import records, wait_for_event
from tests.ctl.refserver import Ran, our_ctl
from tests.interop.reference import PrivateSystemBus
from tests.server.conftest import TLSKey, client_section, fetch
from tests.server.ourserver import our_server

SECRET = b"\x85 dbus observe secret"


def key() -> TLSKey:
    return TLSKey(*generate_ed25519_keypair())


def wait_listed(bus: PrivateSystemBus, name: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        done = our_ctl(bus, [])
        if done.returncode == 0 and name in done.stdout:
            return
        assert time.monotonic() < deadline, f"server not on the bus: {done.stderr}"
        time.sleep(0.2)


def ctl(bus: PrivateSystemBus, *args: str) -> Ran:
    return our_ctl(bus, list(args))


def test_unknown_explain_and_dbus_causes(tmp_path: Path) -> None:
    alpha, stranger = key(), key()
    audit = tmp_path / "audit.jsonl"
    conf = client_section("alpha", alpha, SECRET) + client_section(
        "beta", key(), SECRET, checker="echo starting; echo 'beta: host unreachable'; exit 3"
    )
    with (
        PrivateSystemBus() as bus,
        our_server(conf, use_dbus=True, env=bus.env, extra_args=[f"--audit-log={audit}"]) as srv,
    ):
        wait_listed(bus, "alpha")
        none = ctl(bus, "--unknown")
        assert none.returncode == 0
        assert "No unknown key IDs" in none.stdout

        assert fetch(srv.host, srv.port, stranger) is None
        assert fetch(srv.host, srv.port, stranger) is None
        table = ctl(bus, "--unknown")
        assert table.returncode == 0, table.stderr
        assert stranger.key_id in table.stdout
        rows = json.loads(ctl(bus, "--unknown", "--dump-json").stdout)
        assert [(r["key_id"], r["count"]) for r in rows] == [(stranger.key_id, 2)]
        assert rows[0]["address"].endswith("127.0.0.1")

        fresh = ctl(bus, "--explain", "alpha")
        assert fresh.returncode == 0, fresh.stdout + fresh.stderr
        assert "alpha: would get its secret now: yes" in fresh.stdout
        assert "has not asked since the server started" in fresh.stdout

        assert ctl(bus, "--disable", "alpha").returncode == 0
        wait_for_event(audit, "client_disabled")
        off = ctl(bus, "--explain", "alpha")
        assert off.returncode == 1
        assert "would get its secret now: no" in off.stdout
        assert "alpha is disabled since" in off.stdout
        assert f"by D-Bus Set Enabled (uid {os.getuid()})" in off.stdout
        assert fetch(srv.host, srv.port, alpha) is None
        asked = ctl(bus, "--explain", "alpha")
        assert "the key last asked" in asked.stdout
        assert "disabled" in asked.stdout

        missing = ctl(bus, "--explain", "nope")
        assert missing.returncode == 1
        assert missing.stderr == "Client not found on server: 'nope'\n"

        assert ctl(bus, "--start-checker", "beta").returncode == 0
        deadline = time.monotonic() + 30
        while "unreachable" not in (beta := ctl(bus, "--explain", "beta")).stdout:
            assert time.monotonic() < deadline, beta.stdout
            time.sleep(0.2)
        assert "the checker's last output line: 'beta: host unreachable'" in beta.stdout

        assert ctl(bus, "--enable", "alpha").returncode == 0
        assert fetch(srv.host, srv.port, alpha) == SECRET
        wait_for_event(audit, "secret_sent")
    disabled = next(r for r in records(audit) if r["event"] == "client_disabled")
    assert disabled["cause"] == "dbus"
    assert disabled["uid"] == os.getuid()
    assert disabled["call"] == "Set Enabled"
    enabled = [r for r in records(audit) if r["event"] == "client_enabled"]
    assert enabled
    assert enabled[-1]["cause"] == "dbus"


def test_extensions_on_a_server_without_them_say_so() -> None:
    with PrivateSystemBus() as bus:
        done = ctl(bus, "--unknown")  # nobody owns the name: the reference's words
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1


def test_extension_usage_errors() -> None:
    with PrivateSystemBus() as bus:
        done = ctl(bus, "--explain")
        assert done.returncode == 2
        assert "--explain: expected one argument" in done.stderr
        both = ctl(bus, "--unknown", "--explain", "x")
        assert both.returncode == 2


def test_denial_and_removal_over_dbus_are_recorded_with_the_uid(tmp_path: Path) -> None:
    gamma = key()
    audit = tmp_path / "audit.jsonl"
    conf = client_section("gamma", gamma, SECRET, approval_delay="PT30S")
    with (
        PrivateSystemBus() as bus,
        our_server(conf, use_dbus=True, env=bus.env, extra_args=[f"--audit-log={audit}"]) as srv,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        wait_listed(bus, "gamma")
        waiting = pool.submit(fetch, srv.host, srv.port, gamma)
        wait_for_event(audit, "approval_requested")
        assert ctl(bus, "--deny", "gamma").returncode == 0
        assert waiting.result(30) is None
        assert ctl(bus, "--remove", "gamma").returncode == 0
        wait_for_event(audit, "client_removed")
    found = records(audit)
    denied = next(r for r in found if r["event"] == "approval_denied")
    assert (denied["client"], denied["cause"], denied["uid"]) == ("gamma", "dbus", os.getuid())
    assert denied["key_id"] == gamma.key_id
    removed = next(r for r in found if r["event"] == "client_removed")
    assert (removed["cause"], removed["uid"], removed["call"]) == (
        "dbus",
        os.getuid(),
        "RemoveClient",
    )
