from __future__ import annotations

import copy
import dataclasses
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mandos.core.client_state import merge_config
from mandos.core.config import ClientConfig
from mandos.core.effects import Log
from mandos.core.errors import StateFileError
from mandos.core.registry import Registry
from mandos.core.state_model import (
    client_record_key,
    dump,
    restore,
    restore_into,
    restored_states,
)
from mandos.core.values import KeyId, Secret
from tests.core.helpers import MIN, T0, client_config

LATER = T0 + timedelta(hours=3)


config = client_config


def saved(*configs: ClientConfig) -> tuple[Registry, dict[str, Any]]:
    reg = Registry(configs or (config(),), T0, random.Random(0))
    for name in reg.names():
        reg.checked_ok(name, T0)
    data = json.loads(json.dumps(dump(reg)))
    assert isinstance(data, dict)
    return reg, data


def restored(
    configs: list[ClientConfig], data: object, now: datetime = T0
) -> tuple[Registry, list[str]]:
    reg, effects = restore(configs, data, now, random.Random(1))
    return reg, [e.message % e.args for e in effects if isinstance(e, Log)]


def test_dump_is_versioned_json_without_secrets() -> None:
    reg, data = saved(config("a"), config("b"))
    reg.set_property("a", "Secret", b"RUNTIMESECRET", T0)
    text = json.dumps(dump(reg))
    assert data["version"] == 1
    assert set(data["clients"]) == {"a", "b"}
    assert "TOPSECRET" not in text
    assert "RUNTIMESECRET" not in text
    assert "secret" not in text.lower()


def test_round_trip_keeps_runtime_state() -> None:
    reg, _ = saved()
    reg.set_property("a", "Host", "runtime-host", T0)
    reg.set_property("a", "Timeout", 10 * MIN, T0)
    reg.set_property("a", "Checker", "c", T0)
    reg.checker_finished("a", None, None, T0)  # no checker running: ignored
    data = dump(reg)
    back, msgs = restored([config()], data, T0 + MIN)
    assert msgs == []
    snap, orig = back.snapshot("a"), reg.snapshot("a")
    for key in ("Host", "Timeout", "Checker", "Created", "LastCheckedOK", "LastCheckerStatus"):
        assert snap[key] == orig[key]
    assert snap["Expires"] == T0 + 10 * MIN  # restored expiry is later than a fresh one
    assert dump(back)["clients"] == data["clients"]
    _, decision, _ = back.begin_request(KeyId("A" * 64), "::1", T0 + MIN)
    assert getattr(decision, "secret", None) == Secret(b"TOPSECRET-a")


def test_changed_config_values_win_unchanged_keep_runtime() -> None:
    reg, _ = saved()
    reg.set_property("a", "Host", "runtime-host", T0)
    reg.set_property("a", "Interval", 3 * MIN, T0)
    data = dump(reg)
    back, _ = restored([config(interval=7 * MIN, checker="new")], data)
    snap = back.snapshot("a")
    assert snap["Host"] == "runtime-host"
    assert snap["Interval"] == 7 * MIN
    assert snap["Checker"] == "new"


def test_removed_clients_dropped_new_ones_added() -> None:
    _, data = saved(config("a"), config("b"))
    back, _ = restored([config("b"), config("c", key_id=None)], data)
    assert back.names() == ["b", "c"]
    assert back.snapshot("c")["Created"] == T0
    assert back.snapshot("b")["LastCheckedOK"] == T0


def test_expired_client_with_good_last_check_stays_enabled() -> None:
    _, data = saved()
    back, msgs = restored([config()], data, LATER)
    assert msgs == []
    snap = back.snapshot("a")
    assert snap["Enabled"] is True
    expires = snap["Expires"]
    assert isinstance(expires, datetime)
    assert expires >= LATER + 5 * MIN


@pytest.mark.parametrize(("status", "ok"), [(1, T0), (-1, T0), (-2, None), (0, None)])
def test_expired_client_without_good_last_check_is_disabled(
    status: int, ok: datetime | None
) -> None:
    _, data = saved()
    record = data["clients"]["a"]
    record["last_checker_status"] = status
    record["last_checked_ok"] = None if ok is None else ok.isoformat()
    back, msgs = restored([config()], data, LATER)
    assert msgs == [
        "Disabling client a: it expired while the server was down and its last checker"
        " did not succeed"
    ]
    assert back.snapshot("a")["Enabled"] is False
    assert back.snapshot("a")["Expires"] is None
    assert back.next_deadline() is None


def test_enabled_changed_in_file_wins() -> None:
    reg, _ = saved()
    back, _ = restored([config(enabled=False)], dump(reg), LATER)
    assert back.snapshot("a")["Enabled"] is False
    reg.disable("a", T0)
    back, _ = restored([config(enabled=False)], dump(reg), LATER)
    assert back.snapshot("a")["Enabled"] is False  # unchanged in file: runtime kept
    _, data = saved(config(enabled=False))
    back, msgs = restored([config(enabled=True)], data, LATER)
    snap = back.snapshot("a")
    assert (snap["Enabled"], snap["LastEnabled"], msgs) == (True, LATER, [])
    assert back.next_deadline() is not None


def _mutated(path: list[str], value: object) -> dict[str, Any]:
    _, data = saved()
    data = copy.deepcopy(data)
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()

BAD: list[tuple[object, str]] = [
    ([], "expected a JSON object"),
    ({"version": 2, "clients": {}}, "unsupported version 2"),
    ({"version": True, "clients": {}}, "unsupported version True"),
    ({"clients": {}}, "unsupported version None"),
    ({"version": 1, "clients": []}, "'clients' is not an object"),
    ({"version": 1, "clients": {"a": 5}}, "client 'a': expected an object"),
    (_mutated(["clients", "a", "created"], _DELETE), "client 'a'.created: missing"),
    (_mutated(["clients", "a", "created"], None), "client 'a'.created: expected an ISO 8601"),
    (_mutated(["clients", "a", "created"], "yesterday"), "client 'a'.created: Invalid isoformat"),
    (_mutated(["clients", "a", "created"], "2024-05-01T12:00:00"), "with a UTC offset"),
    (_mutated(["clients", "a", "expires"], "0001-01-01T00:00:00+01:00"), "client 'a'.expires"),
    (_mutated(["clients", "a", "enabled"], 1), "client 'a'.enabled: expected true or false"),
    (_mutated(["clients", "a", "last_checker_status"], 256), "expected an exit status"),
    (_mutated(["clients", "a", "last_checker_status"], False), "expected an exit status"),
    (_mutated(["clients", "a", "last_checker_signal"], "9"), "expected a signal number"),
    (_mutated(["clients", "a", "seen"], None), "client 'a': seen: expected an object"),
    (_mutated(["clients", "a", "seen", "timeout"], -1), "seen.timeout: expected a whole number"),
    (_mutated(["clients", "a", "settings", "timeout"], 1.5), "settings.timeout"),
    (_mutated(["clients", "a", "settings", "timeout"], 10**30), "settings.timeout"),
    (_mutated(["clients", "a", "settings", "host"], 5), "settings.host: expected a string"),
    (_mutated(["clients", "a", "settings", "approved_by_default"], "yes"), "approved_by_default"),
]


@pytest.mark.parametrize(("data", "message"), BAD)
def test_malformed_state_is_one_line_state_file_error(data: object, message: str) -> None:
    with pytest.raises(StateFileError, match=message) as info:
        restore([config()], data, T0, random.Random(0))
    assert "\n" not in str(info.value)


def test_unknown_keys_are_ignored_and_unmatched_records_still_checked() -> None:
    data = _mutated(["clients", "a", "future_field"], [1, 2])
    restored([config()], data)
    data["clients"]["gone"] = {"bad": True}
    with pytest.raises(StateFileError, match="client 'gone'"):
        restore([config()], data, T0, random.Random(0))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def outcome(data: object) -> Registry | str:
    """The restored registry, or the StateFileError message."""
    try:
        reg, _ = restore([config()], data, T0, random.Random(0))
    except StateFileError as exc:
        return str(exc)
    return reg


@given(JSON)
def test_arbitrary_json_gives_registry_or_state_file_error(data: object) -> None:
    result = outcome(data)
    assert isinstance(result, Registry) or "\n" not in result


LEAVES = [
    ["version"],
    ["clients", "a", "enabled"],
    ["clients", "a", "created"],
    ["clients", "a", "expires"],
    ["clients", "a", "last_enabled"],
    ["clients", "a", "last_checked_ok"],
    ["clients", "a", "last_approval_request"],
    ["clients", "a", "last_checker_status"],
    ["clients", "a", "last_checker_signal"],
    ["clients", "a", "seen", "enabled"],
    ["clients", "a", "seen", "interval"],
    ["clients", "a", "settings", "timeout"],
    ["clients", "a", "settings", "checker"],
]

VALUES = (
    JSON
    | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
    | st.integers(min_value=-(2**70), max_value=2**70)
)


@given(st.sampled_from(LEAVES), VALUES)
def test_any_damaged_field_gives_registry_or_state_file_error(
    path: list[str], value: object
) -> None:
    result = outcome(_mutated(path, value))
    if isinstance(result, str):
        assert "\n" not in result
    else:
        result.tick(datetime.max.replace(tzinfo=UTC))
        result.next_deadline()
        dump(result)


def test_restore_into_an_existing_registry() -> None:
    reg, _ = saved()
    reg.set_property("a", "Host", "runtime-host", T0)
    fresh = Registry([config(), config("b")], T0, random.Random(2))
    assert restore_into(fresh, dump(reg), T0) == []
    assert fresh.names() == ["a", "b"]
    assert fresh.snapshot("a")["Host"] == "runtime-host"
    with pytest.raises(StateFileError):
        restore_into(fresh, {"version": 1, "clients": {"a": []}}, T0)
    assert fresh.snapshot("a")["Host"] == "runtime-host"


def test_crashed_checker_round_trips() -> None:
    reg, _ = saved()
    reg.start_checker("a", T0)
    reg.checker_finished("a", None, 9, T0)
    back, _ = restored([config()], dump(reg), T0)
    assert back.states()[0].last_checker_signal == 9
    assert back.snapshot("a")["LastCheckerStatus"] == -1


def test_client_record_key_changes_with_the_record() -> None:
    reg, _ = saved()
    before = client_record_key(reg.states()[0])
    assert client_record_key(reg.states()[0]) == before
    reg.checked_ok("a", LATER)
    assert client_record_key(reg.states()[0]) != before


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [("seen", "approved_by_default", 1), ("settings", "approved_by_default", 1),
     ("settings", "timeout", 300_000_000.0), ("seen", "enabled", 1)],
)  # fmt: skip
def test_records_alike_but_for_a_type_are_each_checked(
    section: str, field: str, value: object
) -> None:
    _, data = saved(config("a"), config("b"))
    good = data["clients"]["a"][section]
    data["clients"]["b"][section][field] = value  # == the good value, but not valid JSON for it
    assert data["clients"]["b"][section] == good
    with pytest.raises(StateFileError, match=f"client 'b': {section}.{field}"):
        restore([config("a"), config("b")], data, T0, random.Random(0))


SETTING_VALUES: dict[str, list[object]] = {
    "timeout": [5 * MIN, 7 * MIN],
    "interval": [2 * MIN, 3 * MIN],
    "host": ["", "h1", "h2"],
    "checker": ["check %(name)s", "other"],
    "approved_by_default": [True, False],
}


SETTINGS = st.fixed_dictionaries({f: st.sampled_from(v) for f, v in SETTING_VALUES.items()})


@given(SETTINGS, SETTINGS, SETTINGS)
def test_restored_config_is_merge_config(
    file: dict[str, Any], seen: dict[str, Any], runtime: dict[str, Any]
) -> None:
    reg, _ = saved(config(**seen))
    state = reg.states()[0]
    state.config = dataclasses.replace(state.config, **runtime)  # as D-Bus writes do
    file_config = config(**file)
    back, _ = restored([file_config], dump(reg))
    expected = merge_config(config(**seen), config(**runtime), file_config)
    assert back.states()[0].config == expected


def test_registry_of_restored_states_is_the_restored_registry() -> None:
    reg, _ = saved(config("a"), config("b"))
    reg.set_property("a", "Host", "runtime-host", T0)
    reg.disable("b", T0)
    configs = [config("a"), config("b"), config("c")]
    states, effects = restored_states(configs, dump(reg), T0 + MIN)
    built = Registry.of_states(states, T0 + MIN, random.Random(1))
    back, back_effects = restore(configs, dump(reg), T0 + MIN, random.Random(1))
    assert effects == back_effects
    assert built.names() == back.names() == ["a", "b", "c"]
    for name in ("a", "b"):
        assert built.snapshot(name) == back.snapshot(name)
    # "c" is new: its first check (and so its expiry) is drawn at random, the rest is fixed.
    fresh, other = built.snapshot("c"), back.snapshot("c")
    assert {k: v for k, v in fresh.items() if k != "Expires"} == {
        k: v for k, v in other.items() if k != "Expires"
    }
