"""Our real server writes an audit record for every decision; the chain verifies."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mandos.adapters.gnutls.keys import generate_ed25519_keypair
from mandos.audit.main import main as audit_main
from tests.server.conftest import TLSKey, client_section, fetch
from tests.server.ourserver import RunningServer, our_server

SECRET = b"\x85\x01 SECRET-MARKER-7f3a never in the audit trail"


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for_event(path: Path, event: str, timeout: float = 20) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            found = records(path)
            if any(r["event"] == event for r in found):
                return found
        time.sleep(0.05)
    raise AssertionError(f"no {event} record in {path}")


def key() -> TLSKey:
    return TLSKey(*generate_ed25519_keypair())


def test_every_decision_is_recorded_and_verifies(tmp_path: Path) -> None:
    alpha, beta, gamma, delta, stranger = key(), key(), key(), key(), key()
    conf = (
        client_section("alpha", alpha, SECRET)
        + client_section("beta", beta, SECRET, enabled="False")
        + client_section("gamma", gamma, SECRET, approval_delay="PT1S")
        + client_section("delta", delta, SECRET, approval_delay="PT1S", approved_by_default="False")
    )
    audit = tmp_path / "audit.jsonl"
    server: RunningServer
    with our_server(conf, extra_args=[f"--audit-log={audit}"]) as server:
        assert fetch(server.host, server.port, alpha) == SECRET
        assert fetch(server.host, server.port, beta) is None
        assert fetch(server.host, server.port, stranger) is None
        assert fetch(server.host, server.port, gamma) == SECRET
        assert fetch(server.host, server.port, delta) is None
        server.signal(signal.SIGHUP)
        wait_for_event(audit, "clients_reloaded")
        assert "Client not found for key ID: " + stranger.key_id in server.log_text()
    found = records(audit)
    events = [(r["event"], r.get("client"), r.get("reason")) for r in found]
    assert [e[0] for e in events[:2]] == ["log_opened", "server_started"]
    assert ("client_added", "alpha", None) in events
    assert ("secret_sent", "alpha", None) in events
    assert ("refused", "beta", "disabled") in events
    assert ("refused", None, "unknown key") in events
    assert ("approval_requested", "gamma", None) in events
    assert ("approval_granted", "gamma", None) in events
    assert ("secret_sent", "gamma", None) in events
    assert ("approval_requested", "delta", None) in events
    assert ("refused", "delta", "approval timed out") in events
    assert ("clients_reloaded", None, None) in events
    sent = next(r for r in found if r["event"] == "secret_sent")
    assert sent["key_id"] == alpha.key_id
    assert str(sent["address"]).endswith("127.0.0.1")
    added = next(r for r in found if r["event"] == "client_added")
    assert (added["client"], added["key_id"], added["cause"]) == ("alpha", alpha.key_id, "startup")
    unknown = next(r for r in found if r.get("reason") == "unknown key")
    assert unknown["key_id"] == stranger.key_id
    assert audit.stat().st_mode & 0o777 == 0o600
    raw = audit.read_bytes()
    assert b"SECRET-MARKER" not in raw
    assert SECRET not in raw
    assert audit_main(["verify", str(audit)]) == 0


@contextlib.contextmanager
def served_once(audit: Path, alpha: TLSKey) -> Iterator[RunningServer]:
    """Our server with an audit log, after one secret was sent and recorded."""
    conf = client_section("alpha", alpha, SECRET)
    with our_server(conf, extra_args=[f"--audit-log={audit}"]) as server:
        assert fetch(server.host, server.port, alpha) == SECRET
        wait_for_event(audit, "secret_sent")
        yield server


def test_sighup_reopens_and_the_new_file_continues_the_chain(tmp_path: Path) -> None:
    alpha = key()
    audit = tmp_path / "audit.jsonl"
    with served_once(audit, alpha) as server:
        rotated = tmp_path / "audit.jsonl.1"
        audit.rename(rotated)  # what logrotate does, then it sends SIGHUP
        server.signal(signal.SIGHUP)
        wait_for_event(audit, "clients_reloaded")
        assert fetch(server.host, server.port, alpha) == SECRET
        wait_for_event(audit, "secret_sent")
    old, new = records(rotated), records(audit)
    assert new[0]["prev"] == old[-1]["hash"]
    assert audit_main(["verify", str(rotated), str(audit)]) == 0


def test_restart_resumes_the_chain(tmp_path: Path) -> None:
    alpha = key()
    audit = tmp_path / "audit.jsonl"
    conf = client_section("alpha", alpha, SECRET)
    for _ in range(2):
        with our_server(conf, extra_args=[f"--audit-log={audit}"]) as server:
            assert fetch(server.host, server.port, alpha) == SECRET
    assert [r["event"] for r in records(audit)].count("server_started") == 2
    assert audit_main(["verify", str(audit)]) == 0


def test_unwritable_audit_log_sends_no_secret(tmp_path: Path) -> None:
    alpha = key()
    audit = tmp_path / "audit.jsonl"
    with served_once(audit, alpha) as server:
        audit.rename(tmp_path / "moved")
        audit.mkdir()  # the path is now a directory: the reopened file cannot be written
        server.signal(signal.SIGHUP)
        server.wait_for_log("cannot write the audit log")
        assert fetch(server.host, server.port, alpha) is None  # refused: it will try again
        server.wait_for_log("Not sending the secret to alpha")


def test_bad_audit_log_path_stops_the_start_in_one_line(tmp_path: Path) -> None:
    conf = client_section("alpha", key(), SECRET)
    bad = tmp_path / "missing" / "audit.jsonl"
    with (
        pytest.raises(RuntimeError, match=re.escape(f"mandos: audit log {bad}: the directory")),
        our_server(conf, extra_args=[f"--audit-log={bad}"]),
    ):
        pass
