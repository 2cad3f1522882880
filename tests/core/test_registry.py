from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

import pytest

from mandos.core.config import ClientConfig
from mandos.core.effects import (
    Effect,
    Log,
    PropertiesChanged,
    SaveState,
    Signal,
    StartChecker,
    StopChecker,
    WakeApprovalWaiters,
)
from mandos.core.errors import LocalProtocolError
from mandos.core.registry import AwaitApproval, Decision, Refuse, Registry, SendSecret
from mandos.core.values import EMPTY_KEY_ID, Fingerprint, KeyId, Secret
from tests.core.helpers import FPR_A, KEY_A, KEY_B, MIN, SEC, T0, client_config

config = client_config


def registry(*configs: ClientConfig) -> Registry:
    return Registry(configs or (config(),), T0, random.Random(0))


def props(effects: list[Effect]) -> dict[str, object]:
    merged: dict[str, object] = {}
    for e in effects:
        if isinstance(e, PropertiesChanged):
            merged.update(e.changes)
    return merged


def signals(effects: list[Effect]) -> list[tuple[str | None, str, tuple[object, ...]]]:
    return [(e.name, e.member, e.args) for e in effects if isinstance(e, Signal)]


def logs(effects: list[Effect]) -> list[str]:
    return [e.message % e.args for e in effects if isinstance(e, Log)]


def test_find_by_key_id_and_fingerprint() -> None:
    reg = registry(config("a"), config("b"), config("c", key_id=EMPTY_KEY_ID))
    assert reg.find(KEY_A) == "a"
    assert reg.find(KEY_B) == "b"  # "c" has no key
    assert reg.find(EMPTY_KEY_ID) is None
    assert reg.find(None, FPR_A) == "a"
    assert reg.find(None, Fingerprint("00" * 20)) is None
    assert reg.find(None) is None
    assert reg.names() == ["a", "b", "c"]


def test_announce() -> None:
    assert registry(config("a"), config("b")).announce() == [
        Signal(None, "ClientAdded", ("a",)),
        Signal(None, "ClientAdded", ("b",)),
    ]
    assert Registry((), T0, random.Random(0)).announce() == [
        Log(logging.WARNING, "No clients defined")
    ]


def test_unknown_key_is_refused_with_client_not_found() -> None:
    handle, decision, out = registry().begin_request(KEY_B, "fe80::1%eth0", T0)
    assert handle is None
    assert decision == Refuse(None, "Client not found")
    assert out == [
        Signal(None, "ClientNotFound", (str(KEY_B), "fe80::1%eth0")),
        Log(
            logging.INFO,
            "Client not found for key ID: %s, address: %s",
            (str(KEY_B), "fe80::1%eth0"),
        ),
    ]
    _, _, out = registry().begin_request(None, "::1", T0, fingerprint=Fingerprint("00" * 20))
    assert signals(out) == [(None, "ClientNotFound", ("00" * 20, "::1"))]


def test_each_unknown_key_is_logged_at_info_once_an_hour() -> None:
    """Every refusal is signalled; the log line is INFO once per key and hour, else DEBUG."""
    reg = registry()

    def level(key: KeyId, when: datetime) -> list[int]:
        _, _, out = reg.begin_request(key, "::1", when)
        assert signals(out) == [(None, "ClientNotFound", (str(key), "::1"))]
        return [e.level for e in out if isinstance(e, Log)]

    assert level(KEY_B, T0) == [logging.INFO]
    assert level(KEY_B, T0 + MIN) == [logging.DEBUG]
    assert level(KeyId("CD" * 32), T0 + MIN) == [logging.INFO]
    assert level(KEY_B, T0 + 61 * MIN) == [logging.INFO]


def test_no_approval_step_sends_at_once() -> None:
    reg = registry()
    handle, decision, out = reg.begin_request(KEY_A, "::1", T0)
    assert decision == SendSecret("a", Secret(b"TOPSECRET-a"))
    assert out == []
    assert handle is not None
    out = reg.end_request(handle, T0 + MIN, sent=True)
    assert logs(out) == ["Sending secret to a"]
    assert signals(out) == [("a", "GotSecret", ())]
    assert props(out) == {"Expires": T0 + 16 * MIN}
    assert out[-1] == SaveState()
    assert reg.end_request(handle, T0, sent=True) == []  # idempotent


def test_disabled_client_is_rejected() -> None:
    reg = registry(config(enabled=False))
    handle, decision, out = reg.begin_request(KEY_A, "::1", T0)
    assert decision == Refuse("a", "Disabled")
    assert out == [
        Log(logging.INFO, "Client %s is disabled", ("a",)),
        Signal("a", "Rejected", ("Disabled",)),
    ]
    assert handle is not None
    assert reg.end_request(handle, T0, sent=False) == []


def begin_waiting(reg: Registry) -> tuple[object, list[Effect]]:
    handle, decision, out = reg.begin_request(KEY_A, "::1", T0)
    assert decision == AwaitApproval("a", T0 + MIN)
    return handle, out


def approval_registry(**changes: object) -> Registry:
    return registry(config(approval_delay=MIN, approval_duration=10 * SEC, **changes))


def test_approval_wait_then_approve() -> None:
    reg = approval_registry()
    handle, decision, out = reg.begin_request(KEY_A, "::1", T0)
    assert handle is not None
    assert decision == AwaitApproval("a", T0 + MIN)
    assert logs(out) == ["Client a needs approval"]
    assert signals(out) == [("a", "NeedApproval", (60000, True))]
    assert props(out) == {"ApprovalPending": True, "LastApprovalRequest": T0}
    assert reg.snapshot("a")["ApprovalPending"] is True
    # A spurious wake-up: still waiting, same deadline, no second NeedApproval.
    assert reg.poll_request(handle, T0 + SEC) == (AwaitApproval("a", T0 + MIN), [])
    assert reg.approve("a", True, T0 + 2 * SEC) == [WakeApprovalWaiters("a")]
    decision, out = reg.poll_request(handle, T0 + 2 * SEC)
    assert decision == SendSecret("a", Secret(b"TOPSECRET-a"))
    out = reg.end_request(handle, T0 + 3 * SEC, sent=True)
    assert props(out) == {"ApprovalPending": False, "Expires": T0 + 3 * SEC + 15 * MIN}


@pytest.mark.parametrize(
    ("approved", "default", "at", "expected", "message"),
    [
        (False, True, 2, Refuse("a", "Denied"), "Client a was not approved"),
        (None, True, 60, SendSecret("a", Secret(b"TOPSECRET-a")), None),
        (
            None,
            False,
            60,
            Refuse("a", "Approval timed out"),
            "Client a timed out while waiting for approval",
        ),
    ],
)
def test_approval_outcomes(
    approved: bool | None, default: bool, at: int, expected: Decision, message: str | None
) -> None:
    reg = approval_registry(approved_by_default=default)
    handle, _, _ = reg.begin_request(KEY_A, "::1", T0)
    assert handle is not None
    if approved is not None:
        reg.approve("a", approved, T0 + SEC)
    decision, out = reg.poll_request(handle, T0 + at * SEC)
    assert decision == expected
    if message is not None:
        assert isinstance(expected, Refuse)
        assert logs(out) == [message]
        assert signals(out) == [("a", "Rejected", (expected.reason,))]


def test_approved_before_asking_sends_at_once() -> None:
    reg = approval_registry()
    reg.approve("a", True, T0)
    handle, decision, out = reg.begin_request(KEY_A, "::1", T0 + SEC)
    assert isinstance(decision, SendSecret)
    assert props(out) == {"ApprovalPending": True}
    assert handle is not None
    assert props(reg.end_request(handle, T0 + SEC, sent=False)) == {"ApprovalPending": False}


def test_disable_wakes_waiters_who_are_then_rejected() -> None:
    reg = approval_registry()
    handle, _, _ = reg.begin_request(KEY_A, "::1", T0)
    assert handle is not None
    out = reg.disable("a", T0 + SEC)
    assert WakeApprovalWaiters("a") in out
    assert reg.poll_request(handle, T0 + SEC)[0] == Refuse("a", "Disabled")


def test_removed_client_during_wait() -> None:
    reg = approval_registry()
    handle, _, _ = reg.begin_request(KEY_A, "::1", T0)
    assert handle is not None
    out = reg.remove("a", T0 + SEC)
    assert out == [
        WakeApprovalWaiters("a"),
        Log(logging.INFO, "Removing client %s", ("a",)),
        Signal(None, "ClientRemoved", ("a",)),
        SaveState(),
    ]
    assert reg.poll_request(handle, T0 + SEC) == (Refuse("a", "Disabled"), [])
    assert logs(reg.end_request(handle, T0 + SEC, sent=True)) == ["Sending secret to a"]
    assert reg.find(KEY_A) is None


def test_removed_client_end_request_not_sent() -> None:
    reg = approval_registry()
    handle, _, _ = reg.begin_request(KEY_A, "::1", T0)
    assert handle is not None
    reg.remove("a", T0)
    assert reg.end_request(handle, T0, sent=False) == []
    assert reg.poll_request(handle, T0) == (Refuse("a", "Disabled"), [])


# -- commands ----------------------------------------------------------------------------------


def test_unknown_name_is_a_local_error() -> None:
    reg = registry()
    with pytest.raises(LocalProtocolError, match="no client named 'zz'"):
        reg.enable("zz", T0)
    assert reg.checker_finished("zz", 0, None, T0) == []


def test_enable_disable_emit_properties_and_save() -> None:
    reg = registry(config(enabled=False))
    out = reg.enable("a", T0)
    assert props(out) == {"Enabled": True, "LastEnabled": T0, "Expires": T0 + 4 * MIN}
    assert out[-1] == SaveState()
    assert reg.enable("a", T0) == []  # no change, no save
    out = reg.disable("a", T0)
    assert props(out) == {"Enabled": False, "Expires": None}
    assert logs(out) == ["Disabling client a: on request (D-Bus)"]
    assert logs(reg.set_property("a", "Enabled", True, T0)) == [
        "Enabling client a: on request (D-Bus)"
    ]


def test_checker_commands_and_completion() -> None:
    reg = registry()
    out = reg.start_checker("a", T0)
    assert StartChecker("a", "check a") in out
    assert props(out) == {"CheckerRunning": True}
    out = reg.checker_finished("a", 0, None, T0 + SEC)
    assert signals(out) == [("a", "CheckerCompleted", (0, 0, "check a"))]
    assert props(out) == {
        "CheckerRunning": False,
        "LastCheckedOK": T0 + SEC,
        "LastCheckerStatus": 0,
        "Expires": T0 + SEC + 5 * MIN,
    }
    reg.start_checker("a", T0)
    assert reg.stop_checker("a", T0)[0] == StopChecker("a")
    assert props(reg.checked_ok("a", T0 + MIN)) == {
        "LastCheckedOK": T0 + MIN,
        "Expires": T0 + 6 * MIN,
    }


# (property, value, expected PropertiesChanged changes)
SETTERS: list[tuple[str, object, dict[str, object]]] = [
    ("ApprovalDelay", 5 * SEC, {"ApprovalDelay": 5 * SEC}),
    ("ApprovalDuration", 5 * SEC, {"ApprovalDuration": 5 * SEC}),
    ("ExtendedTimeout", MIN, {"ExtendedTimeout": MIN}),
    ("ApprovedByDefault", False, {"ApprovedByDefault": False}),
    ("Checker", "true", {"Checker": "true"}),
    ("Host", "h", {"Host": "h"}),
    ("Enabled", False, {"Enabled": False, "Expires": None}),
    ("CheckerRunning", True, {"CheckerRunning": True}),
    ("LastCheckedOK", "", {"LastCheckedOK": T0 + MIN, "Expires": T0 + 6 * MIN}),
]


@pytest.mark.parametrize(("prop", "value", "changes"), SETTERS)
def test_set_property(prop: str, value: object, changes: dict[str, object]) -> None:
    reg = registry()
    reg.checked_ok("a", T0)  # expires = T0 + 5 min, not touched by the setters above
    out = reg.set_property("a", prop, value, T0 + MIN)
    assert props(out) == changes
    assert out[-1] == SaveState()
    assert {k: reg.snapshot("a")[k] for k in changes} == changes


def test_set_timeout_and_interval() -> None:
    reg = registry()
    reg.checked_ok("a", T0)
    assert props(reg.set_property("a", "Timeout", 10 * MIN, T0)) == {
        "Timeout": 10 * MIN,
        "Expires": T0 + 10 * MIN,
    }
    out = reg.set_property("a", "Interval", MIN, T0)
    assert StartChecker("a", "check a") in out
    assert reg.next_deadline() == T0 + MIN
    out = reg.set_property("a", "Timeout", SEC, T0 + MIN)
    assert props(out)["Enabled"] is False
    assert StopChecker("a") in out


def test_set_secret_invalidates() -> None:
    reg = registry()
    out = reg.set_property("a", "Secret", b"new", T0)
    assert out == [PropertiesChanged("a", {}, ("Secret",)), SaveState()]
    _, decision, _ = reg.begin_request(KEY_A, "::1", T0)
    assert decision == SendSecret("a", Secret(b"new"))
    reg.set_property("a", "Secret", Secret(b"newer"), T0)
    assert reg.begin_request(KEY_A, "::1", T0)[1] == SendSecret("a", Secret(b"newer"))
    reg.set_property("a", "CheckerRunning", False, T0)


@pytest.mark.parametrize(
    ("prop", "value", "message"),
    [
        ("Timeout", 5, "needs a timedelta"),
        ("Timeout", -SEC, "cannot be negative"),
        ("Host", 5, "needs a str"),
        ("Enabled", 1, "needs a bool"),
        ("Secret", "text", "needs a Secret"),
        ("Name", "x", "not writable"),
        ("Created", T0, "not writable"),
    ],
)
def test_set_property_rejects(prop: str, value: object, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        registry().set_property("a", prop, value, T0)


def test_approve_unknown_client() -> None:
    with pytest.raises(LocalProtocolError):
        registry().approve("nope", True, T0)


# -- timers ------------------------------------------------------------------------------------


def test_tick_and_next_deadline() -> None:
    reg = registry(config("a"), config("b", enabled=False))
    first = reg.next_deadline()
    assert first is not None
    assert T0 <= first <= T0 + 2 * MIN
    assert reg.tick(first - SEC) == []
    out = reg.tick(first)
    assert StartChecker("a", "check a") in out
    assert out[-1] == SaveState()
    assert Registry((), T0, random.Random(0)).next_deadline() is None


def test_tick_expires_client() -> None:
    reg = registry()
    reg.checked_ok("a", T0)
    reg.set_property("a", "Interval", timedelta(hours=1), T0)
    out = reg.tick(T0 + 5 * MIN)
    assert logs(out)[-1] == (
        "Disabling client a: timed out: no successful check within its timeout"
        " (last at 2024-05-01 12:00:00 UTC)"
    )
    assert props(out)["Enabled"] is False


# -- reload ------------------------------------------------------------------------------------


def test_reload_adds_removes_and_merges() -> None:
    reg = registry(config("a"), config("b"))
    reg.set_property("a", "Host", "runtime-host", T0)
    reg.set_property("a", "Checker", "runtime-checker", T0)
    new_a = config("a", checker="file-checker", key_id=KeyId("CC" * 32))
    out = reg.reload([new_a, config("c", key_id=KeyId("DD" * 32))], T0 + MIN)
    assert signals(out) == [(None, "ClientRemoved", ("b",)), (None, "ClientAdded", ("c",))]
    assert logs(out) == ["Removing client b", "Adding client c"]
    assert props(out) == {"Checker": "file-checker", "KeyID": "CC" * 32}
    assert out[-1] == SaveState()
    snap = reg.snapshot("a")
    assert (snap["Host"], snap["Checker"]) == ("runtime-host", "file-checker")
    assert reg.names() == ["a", "c"]
    assert reg.find(KeyId("CC" * 32)) == "a"
    assert reg.find(KEY_A) is None


def test_reload_enabled_flip_follows_the_file() -> None:
    reg = registry()
    out = reg.reload([config(enabled=False)], T0)
    assert props(out)["Enabled"] is False
    reg.enable("a", T0)
    assert reg.reload([config(enabled=False)], T0) == []  # file unchanged: runtime kept
    out = reg.reload([config(enabled=True)], T0)
    assert props(out) == {}  # already enabled
    reg.disable("a", T0)
    out = reg.reload([config(enabled=False)], T0)
    out = reg.reload([config(enabled=True)], T0)
    assert props(out)["Enabled"] is True
    assert logs(out) == ["Enabling client a: clients.conf now says enabled = True"]


def test_snapshot_of_unknown_client() -> None:
    with pytest.raises(LocalProtocolError):
        registry().snapshot("zz")
    assert len(registry().states()) == 1
