from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from mandos.core.log_limit import OncePerKey

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)


def test_once_then_again_after_the_quiet_time() -> None:
    once = OncePerKey(quiet_for=10 * SEC)
    assert once.first("a", T0)
    assert not once.first("a", T0 + 9 * SEC)
    assert once.first("b", T0 + 9 * SEC)
    assert once.first("a", T0 + 10 * SEC)
    assert not once.first("a", T0 + 19 * SEC)


def test_a_clock_that_went_back_does_not_silence_a_key() -> None:
    once = OncePerKey(quiet_for=10 * SEC)
    assert once.first("a", T0)
    assert once.first("a", T0 - SEC)


def test_the_table_is_bounded_and_forgets_the_oldest() -> None:
    once = OncePerKey(quiet_for=timedelta(hours=1), remembered=2)
    assert once.first("a", T0)
    assert once.first("b", T0)
    assert once.first("c", T0)  # "a" is forgotten
    assert once.first("a", T0)
    assert not once.first("c", T0)


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 100))))
def test_never_two_lines_for_a_key_within_the_quiet_time(calls: list[tuple[str, int]]) -> None:
    once = OncePerKey(quiet_for=10 * SEC)
    logged: dict[str, datetime] = {}
    for key, second in sorted(calls, key=lambda c: c[1]):
        now = T0 + second * SEC
        if once.first(key, now):
            assert key not in logged or now - logged[key] >= 10 * SEC
            logged[key] = now
