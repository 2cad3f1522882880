"""mandos-ctl --explain's words (core/explain.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mandos.core.explain import AFTER_APPROVAL, NO, YES, History, explain

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def props(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "Name": "web1",
        "Enabled": True,
        "Expires": NOW + timedelta(minutes=5),
        "Checker": "fping -q -- web1",
        "LastCheckerStatus": 0,
        "LastCheckedOK": NOW - timedelta(minutes=1),
        "ApprovalDelay": timedelta(0),
        "ApprovedByDefault": True,
        "ApprovalPending": False,
        "KeyID": "AB" * 32,
    }
    return {**base, **over}


def test_enabled_client_never_seen() -> None:
    e = explain(props(), History(), NOW)
    assert e.verdict == YES
    assert "web1 is enabled" in e.reasons[0]
    assert "has not asked since the server started" in e.reasons[-1]


def test_disabled_by_timeout_names_the_checker() -> None:
    history = History(
        disabled_at=NOW - timedelta(hours=2),
        disabled_by="its timeout (no successful check in time)",
        checker_output="ICMP Host Unreachable from 10.0.0.1",
        last_request=NOW - timedelta(minutes=3),
        last_request_address="10.0.0.9",
        last_outcome="disabled",
    )
    e = explain(props(Enabled=False, LastCheckerStatus=1), history, NOW)
    assert e.verdict == NO
    assert e.reasons[0] == (
        "web1 is disabled since 2026-12-02 10:00:00 UTC (PT2H ago),"
        " by its timeout (no successful check in time)"
    )
    assert "its checker 'fping -q -- web1' last exited with status 1" in e.reasons
    assert "the checker's last output line: 'ICMP Host Unreachable from 10.0.0.1'" in e.reasons
    assert "the last successful check was 2026-12-02 11:59:00 UTC" in e.reasons
    assert e.reasons[-1] == "the key last asked 2026-12-02 11:57:00 UTC from 10.0.0.9: disabled"


def test_checker_never_ran_and_crashed() -> None:
    never = explain(props(Enabled=False, LastCheckerStatus=-2, LastCheckedOK=None), History(), NOW)
    assert any("has not run yet" in r for r in never.reasons)
    assert any("successful check was never" in r for r in never.reasons)
    crashed = explain(props(Enabled=False, LastCheckerStatus=-1), History(), NOW)
    assert any("killed by a signal" in r for r in crashed.reasons)


def test_approval_required() -> None:
    by_default = explain(props(ApprovalDelay=timedelta(seconds=30)), History(), NOW)
    assert by_default.verdict == YES
    assert any("waits PT30S" in r and "sent by default" in r for r in by_default.reasons)
    denied = explain(
        props(ApprovalDelay=timedelta(seconds=30), ApprovedByDefault=False, ApprovalPending=True),
        History(),
        NOW,
    )
    assert denied.verdict == AFTER_APPROVAL
    assert any("refused by default" in r for r in denied.reasons)
    assert "a request is waiting for approval right now" in denied.reasons


def test_disabled_stays_no_whatever_the_approval_settings() -> None:
    e = explain(props(Enabled=False, ApprovalDelay=timedelta(seconds=5)), History(), NOW)
    assert e.verdict == NO
    assert any("approval is required" in r for r in e.reasons)
