"""The bounded tracker of unknown key IDs (core/unknown_keys.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mandos.core.unknown_keys import UnknownKey, UnknownKeys

T0 = datetime(2026, 12, 2, tzinfo=UTC)


def test_new_key_is_reported_once_and_counted() -> None:
    keys = UnknownKeys()
    assert keys.saw("AA", "10.0.0.1", T0) is True
    assert keys.saw("AA", "10.0.0.2", T0 + timedelta(seconds=5)) is False
    assert keys.entries() == [UnknownKey("AA", "10.0.0.2", T0, T0 + timedelta(seconds=5), 2)]


def test_oldest_seen_goes_first_when_full() -> None:
    keys = UnknownKeys(capacity=2)
    keys.saw("A", "x", T0)
    keys.saw("B", "x", T0)
    keys.saw("A", "x", T0 + timedelta(1))  # A is now the most recent
    assert keys.saw("C", "x", T0 + timedelta(2)) is True
    assert [k.key_id for k in keys.entries()] == ["C", "A"]
    assert keys.get("B") is None


def test_forget_and_bad_capacity() -> None:
    keys = UnknownKeys()
    keys.saw("A", "x", T0)
    keys.forget("A")
    assert len(keys) == 0
    with pytest.raises(ValueError, match="capacity"):
        UnknownKeys(capacity=0)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.sampled_from("ABCDEFGHIJ"), max_size=200), st.integers(1, 5))
def test_never_more_than_capacity_and_newest_kept(ids: list[str], capacity: int) -> None:
    keys = UnknownKeys(capacity)
    for i, key_id in enumerate(ids):
        keys.saw(key_id, "x", T0 + timedelta(seconds=i))
    assert len(keys) <= capacity
    if ids:
        assert keys.entries()[0].key_id == ids[-1]
        assert sum(k.count for k in keys.entries()) <= len(ids)
