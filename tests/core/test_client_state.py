from __future__ import annotations

import functools
import logging
import random
from datetime import UTC, datetime, timedelta

import pytest

from mandos.core.client_state import (
    APPROVAL_TABLE,
    Approval,
    ClientState,
    Verdict,
    add_time,
    classify_exit,
    merge_config,
    random_delay,
)
from mandos.core.effects import Log, Signal, StartChecker, StopChecker, WakeApprovalWaiters
from mandos.core.properties import CLIENT_PROPERTIES
from mandos.core.values import Fingerprint, KeyId
from tests.core.helpers import MIN, SEC, T0, client_config

KEY = KeyId("AB" * 32)


#: A client named foo.example whose checker names its host.
config = functools.partial(
    client_config, "foo.example", key_id=KEY, checker="check %(host)s", host="foo"
)


def enabled_state(**changes: object) -> ClientState:
    """An enabled client, checked OK at T0: checker due at T0+2min, expires at T0+5min."""
    state = ClientState.fresh(config(**changes), T0)
    state.enable(T0)  # already enabled: no-op
    state.checked_ok(T0)
    state.checker_next_start = T0 + 2 * MIN
    return state


def started(state: ClientState, when: datetime = T0) -> ClientState:
    state.start_checker(when)
    return state


def test_fresh_client() -> None:
    state = ClientState.fresh(config(), T0)
    assert (state.enabled, state.last_enabled, state.created) == (True, T0, T0)
    assert state.last_checker_status == -2
    assert state.next_deadline() is None
    off = ClientState.fresh(config(enabled=False), T0)
    assert (off.enabled, off.last_enabled) == (False, None)


@pytest.mark.parametrize("seed", range(20))
def test_first_checker_at_random_point_within_interval(seed: int) -> None:
    state = ClientState.fresh(config(), T0)
    state.start(T0, random.Random(seed))
    assert state.checker_next_start is not None
    delay = state.checker_next_start - T0
    assert timedelta(0) <= delay <= 2 * MIN
    assert state.expires == T0 + delay + 2 * MIN


def test_start_keeps_a_later_restored_expiry_and_skips_disabled() -> None:
    state = ClientState.fresh(config(), T0)
    state.expires = T0 + timedelta(hours=1)
    state.start(T0, random.Random(1))
    assert state.expires == T0 + timedelta(hours=1)
    off = ClientState.fresh(config(enabled=False), T0)
    off.start(T0, random.Random(1))
    assert off.checker_next_start is None


def test_random_delay_bounds() -> None:
    rng = random.Random(3)
    assert random_delay(timedelta(0), rng) == timedelta(0)
    assert all(timedelta(0) <= random_delay(SEC, rng) <= SEC for _ in range(50))


def test_enable_and_disable() -> None:
    state = ClientState.fresh(config(enabled=False), T0)
    assert state.disable() == []
    assert state.enable(T0, "on request (D-Bus)") == [
        Log(logging.INFO, "Enabling client %s: %s", ("foo.example", "on request (D-Bus)"))
    ]
    assert state.enable(T0) == []  # already enabled: nothing to say
    assert (state.enabled, state.last_enabled) == (True, T0)
    assert state.checker_next_start == T0 + 2 * MIN
    assert state.expires == T0 + 4 * MIN
    started(state)
    state.approvals_pending = 1
    assert state.disable(cause="on request (D-Bus)") == [
        Log(logging.INFO, "Disabling client %s: %s", ("foo.example", "on request (D-Bus)")),
        StopChecker("foo.example"),
        WakeApprovalWaiters("foo.example"),
    ]
    assert not state.enabled
    cleared: tuple[object, ...] = (state.expires, state.checker_next_start, state.checker_running)
    assert cleared == (None, None, False)
    state.enable(T0)
    state.approvals_pending = 0
    assert state.disable(quiet=True) == []


def test_start_checker_expands_runtime_values() -> None:
    state = enabled_state(host="a b")
    out = state.start_checker(T0)
    assert out == [
        Log(logging.DEBUG, "Starting checker %r for %s", ("check 'a b'", "foo.example")),
        StartChecker("foo.example", "check 'a b'"),
        Signal("foo.example", "CheckerStarted", ("check 'a b'",)),
    ]
    assert state.start_checker(T0) == []  # never two at once
    assert state.checker_deadline == T0 + 5 * MIN


def test_bad_checker_template_is_logged_and_retried() -> None:
    state = enabled_state(checker="x %(nosuch)s")
    [log] = state.start_checker(T0)
    assert isinstance(log, Log)
    assert log.level == logging.ERROR
    assert "Could not format string" in str(log.args[1])
    assert state.checker_running is False
    state.config = config()
    assert any(isinstance(e, StartChecker) for e in state.tick(T0 + 2 * MIN))


def test_runtime_values() -> None:
    state = enabled_state(fingerprint=Fingerprint("CD" * 20))
    state.created = datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=UTC)
    values = state.runtime_values()
    assert values["created"] == "2024-05-01 14:00:00.123456"
    assert values["expires"] == "2024-05-01 12:05:00"
    assert values["last_approval_request"] == "None"
    assert values["interval"] == "0:02:00"
    assert values["enabled"] == "True"
    assert values["key_id"] == "AB" * 32
    assert values["fingerprint"] == "CD" * 20
    assert values["dbus_object_path"] == "/clients/foo_example"
    assert ClientState.fresh(config(key_id=None), T0).runtime_values()["key_id"] == ""


# (returncode, signal) -> (status, signal kept, log level, log message, exitcode, waitstatus)
FINISH_TABLE = [
    (0, None, 0, None, logging.DEBUG, "Checker for %s succeeded", 0, 0),
    (1, None, 1, None, logging.INFO, "Checker for %s failed", 1, 256),
    (255, None, 255, None, logging.INFO, "Checker for %s failed", 255, 255 << 8),
    (None, 9, -1, 9, logging.WARNING, "Checker for %s crashed?", -1, (-1 << 8) | 9),
    (-15, None, -1, 15, logging.WARNING, "Checker for %s crashed?", -1, (-1 << 8) | 15),
]


@pytest.mark.parametrize(
    ("rc", "sig", "status", "kept", "level", "message", "exitcode", "waitstatus"), FINISH_TABLE
)
def test_checker_finished(
    rc: int | None,
    sig: int | None,
    status: int,
    kept: int | None,
    level: int,
    message: str,
    exitcode: int,
    waitstatus: int,
) -> None:
    state = started(enabled_state())
    later = T0 + MIN
    out = state.checker_finished(rc, sig, later)
    assert out == [
        Log(level, message, ("foo.example",)),
        Signal("foo.example", "CheckerCompleted", (exitcode, waitstatus, "check foo")),
    ]
    assert (state.last_checker_status, state.last_checker_signal) == (status, kept)
    assert state.checker_running is False
    ok = status == 0
    assert state.last_checked_ok == (later if ok else T0)
    assert state.expires == (later + 5 * MIN if ok else T0 + 5 * MIN)


def test_checker_finished_without_a_checker_is_ignored() -> None:
    state = enabled_state()
    assert state.checker_finished(0, None, T0) == []
    assert classify_exit(None).value == "crashed"


def test_checked_ok_on_disabled_client_keeps_no_expiry() -> None:
    state = ClientState.fresh(config(enabled=False), T0)
    state.checked_ok(T0)
    assert (state.last_checked_ok, state.expires) == (T0, None)


# -- timers ------------------------------------------------------------------------------------


def test_tick_does_nothing_before_anything_is_due() -> None:
    state = enabled_state()
    assert state.next_deadline() == T0 + 2 * MIN
    assert state.tick(T0 + 2 * MIN - SEC) == []
    assert state.checker_running is False


def test_tick_starts_checker_and_reschedules() -> None:
    state = enabled_state()
    out = state.tick(T0 + 2 * MIN)
    assert StartChecker("foo.example", "check foo") in out
    assert state.checker_next_start == T0 + 4 * MIN
    assert state.next_deadline() == T0 + 4 * MIN


def test_checkers_never_overlap() -> None:
    state = enabled_state(timeout=timedelta(minutes=10))
    state.checked_ok(T0)
    state.tick(T0 + 2 * MIN)
    assert state.tick(T0 + 4 * MIN) == []  # still running: skipped, not queued
    assert state.checker_next_start == T0 + 6 * MIN


def test_late_tick_collapses_missed_starts() -> None:
    state = enabled_state(timeout=timedelta(hours=2))
    state.checked_ok(T0)
    out = state.tick(T0 + 9 * MIN)
    assert [e for e in out if isinstance(e, StartChecker)] == [
        StartChecker("foo.example", "check foo")
    ]
    assert state.checker_next_start == T0 + 10 * MIN


def test_early_tick_after_backward_clock_jump_pulls_schedule_in() -> None:
    state = enabled_state()
    assert state.tick(T0 - timedelta(hours=1)) == []
    assert state.checker_next_start == T0 - timedelta(hours=1) + 2 * MIN


def test_checker_is_stopped_after_timeout() -> None:
    state = enabled_state()
    state.expires = T0 + timedelta(hours=1)
    state.checker_next_start = T0 + timedelta(hours=1)
    started(state)
    assert state.next_deadline() == T0 + 5 * MIN
    assert state.tick(T0 + 5 * MIN) == [
        Log(logging.WARNING, "Checker for %s timed out; stopping it", ("foo.example",)),
        StopChecker("foo.example"),
    ]
    assert state.last_checker_status == 0  # unchanged


def test_checker_of_disabled_client_is_stopped_after_timeout() -> None:
    state = started(ClientState.fresh(config(enabled=False), T0))
    assert state.next_deadline() == T0 + 5 * MIN
    assert StopChecker("foo.example") in state.tick(T0 + 5 * MIN)


def test_expiry_disables() -> None:
    state = started(enabled_state())
    out = state.tick(T0 + 5 * MIN)
    cause = "timed out: no successful check within its timeout (last at 2024-05-01 12:00:00 UTC)"
    assert out == [
        Log(logging.INFO, "Disabling client %s: %s", ("foo.example", cause)),
        StopChecker("foo.example"),
    ]
    assert state.enabled is False
    assert state.next_deadline() is None


def test_tick_resets_approval() -> None:
    state = enabled_state(approval_duration=10 * SEC)
    assert state.approve(True, T0) == [WakeApprovalWaiters("foo.example")]
    assert state.next_deadline() == T0 + 10 * SEC
    assert state.current_approval(T0 + 9 * SEC) is Approval.APPROVED
    assert state.current_approval(T0 + 10 * SEC) is Approval.UNDECIDED  # even before the tick
    state.tick(T0 + 10 * SEC)
    assert (state.approved, state.approved_until) == (None, None)


# -- settings ----------------------------------------------------------------------------------


def test_timeout_change_moves_expiry() -> None:
    state = enabled_state()
    assert state.reconfigure(config(timeout=10 * MIN), T0) == []
    assert state.expires == T0 + 10 * MIN


def test_timeout_change_into_the_past_disables() -> None:
    state = enabled_state()
    out = state.reconfigure(config(timeout=MIN), T0 + 4 * MIN)
    cause = "its new timeout has already run out"
    assert out == [Log(logging.INFO, "Disabling client %s: %s", ("foo.example", cause))]
    assert state.enabled is False


def test_interval_change_reschedules_and_starts_now() -> None:
    state = enabled_state()
    out = state.reconfigure(config(interval=10 * MIN), T0 + MIN)
    assert StartChecker("foo.example", "check foo") in out
    assert state.checker_next_start == T0 + 11 * MIN


def test_settings_change_on_disabled_client() -> None:
    state = ClientState.fresh(config(enabled=False), T0)
    assert state.reconfigure(config(interval=MIN, timeout=MIN), T0) == []
    assert state.expires is None


def test_zero_interval_does_not_spin() -> None:
    state = enabled_state(interval=timedelta(0))
    state.checker_next_start = T0
    state.tick(T0)
    assert state.checker_next_start == T0 + SEC


# -- approval ----------------------------------------------------------------------------------


def test_approval_table_is_total() -> None:
    assert set(APPROVAL_TABLE) == {(a, p) for a in Approval for p in (False, True)}


# (approval delay, approved, approved_by_default, until offset or None, now offset) -> verdict
VERDICTS = [
    (timedelta(0), False, True, None, 0, Verdict.SEND),
    (MIN, None, True, None, 0, Verdict.WAIT),
    (MIN, None, True, 60, 30, Verdict.WAIT),
    (MIN, None, True, 60, 60, Verdict.SEND),
    (MIN, None, False, 60, 60, Verdict.TIMED_OUT),
    (MIN, True, False, 60, 30, Verdict.SEND),
    (MIN, False, True, 60, 30, Verdict.DENY),
    (MIN, False, True, 60, 90, Verdict.DENY),
]


@pytest.mark.parametrize(("delay", "approved", "default", "until", "at", "verdict"), VERDICTS)
def test_approval_verdict(
    delay: timedelta,
    approved: bool | None,
    default: bool,
    until: int | None,
    at: int,
    verdict: Verdict,
) -> None:
    state = enabled_state(
        approval_delay=delay, approved_by_default=default, approval_duration=timedelta(hours=1)
    )
    if approved is not None:
        state.approve(approved, T0)
    deadline = None if until is None else T0 + until * SEC
    assert state.approval_verdict(T0 + at * SEC, deadline) is verdict


def test_add_time_saturates() -> None:
    assert add_time(T0, timedelta.max).year == 9999
    assert add_time(T0, timedelta.min).year == 1
    assert add_time(T0, SEC) == T0 + SEC


def test_merge_config_precedence() -> None:
    seen = config()
    runtime = config(host="changed-at-runtime", timeout=MIN)
    file = config(timeout=7 * MIN, checker="new")
    merged = merge_config(seen, runtime, file)
    assert merged.host == "changed-at-runtime"  # file unchanged: runtime kept
    assert merged.timeout == 7 * MIN  # file changed: file wins
    assert merged.checker == "new"


def test_properties_cover_reference_a7() -> None:
    props = enabled_state().properties()
    # REFERENCE A7: 21 readable properties, plus the write-only Secret
    readable = {name for name, p in CLIENT_PROPERTIES.items() if p.readable}
    assert set(props) == readable
    assert len(readable) == 21
    assert set(CLIENT_PROPERTIES) - readable == {"Secret"}
    assert props["KeyID"] == "AB" * 32
    assert props["Fingerprint"] == ""
    assert props["Expires"] == T0 + 5 * MIN


def test_rewind_point() -> None:
    state = enabled_state()  # checker due at T0 + 2 min, interval 2 min
    assert state.rewind_point() == T0
    state.checker_next_start = datetime.min.replace(tzinfo=UTC) + SEC
    assert state.rewind_point() is None  # would underflow: no tick can be that early
    state.disable()
    assert state.rewind_point() is None
