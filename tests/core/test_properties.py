"""Property diffs: read from the state's attributes in one call, shown as the bus shows them."""

from __future__ import annotations

import dataclasses
from operator import attrgetter

from mandos.core.client_state import ClientState
from mandos.core.properties import CLIENT_PROPERTIES, read_varying, varying_changes
from mandos.core.values import KeyId
from tests.core.helpers import T0, client_config


def _state() -> ClientState:
    return ClientState.fresh(client_config("a"), T0)


def test_every_readable_property_is_shown_from_its_source() -> None:
    state = _state()
    for name, prop in CLIENT_PROPERTIES.items():
        if prop.read is None:
            assert not prop.source, name
            continue
        raw = attrgetter(prop.source)(state)
        assert prop.read(state) == (raw if prop.shown is None else prop.shown(raw)), name


def test_no_change_no_properties() -> None:
    state = _state()
    assert varying_changes(read_varying(state), read_varying(state)) == {}


def test_a_changed_source_shows_a_change_only_when_the_shown_value_changes() -> None:
    state = _state()
    before = read_varying(state)
    state.approvals_pending = 1
    once = read_varying(state)
    assert varying_changes(before, once) == {"ApprovalPending": True}
    state.approvals_pending = 2  # still pending: the bus sees nothing new
    assert varying_changes(once, read_varying(state)) == {}


def test_changes_carry_the_shown_values() -> None:
    state = _state()
    before = read_varying(state)
    state.config = dataclasses.replace(state.config, key_id=KeyId("CD" * 32), host="h2")
    state.enabled = not state.enabled
    assert varying_changes(before, read_varying(state)) == {
        "Enabled": state.enabled,
        "Host": "h2",
        "KeyID": "CD" * 32,
    }
