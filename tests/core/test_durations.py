"""Durations: the reference's behaviour (observed by running Mandos 1.8.16), and round trips."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mandos.core.durations import format_ctl, format_rfc3339, parse_ctl_duration, parse_duration
from mandos.core.errors import ConfigError

D = timedelta

# (text, value) pairs the reference 1.8.16 server accepts, with the values it gave.
ACCEPTED = [
    ("PT5M", D(minutes=5)),
    ("P1Y", D(days=364)),
    ("P1M", D(days=28)),
    ("P1W", D(days=7)),
    ("P0W", D(0)),
    ("P0D", D(0)),
    ("P0Y", D(0)),
    ("PT0S", D(0)),
    ("P00001D", D(days=1)),
    ("P1DT0S", D(days=1)),
    ("PT36H", D(days=1, hours=12)),
    ("P1DT25H", D(days=2, hours=1)),
    ("P1DT1M", D(days=1, minutes=1)),
    ("P1Y2M", D(days=420)),
    ("P1M1D", D(days=29)),
    ("P1Y1M1D", D(days=393)),
    ("P1Y1M1DT1H", D(days=393, hours=1)),
    ("P1M1DT1S", D(days=29, seconds=1)),
    ("PT1H1M", D(seconds=3660)),
    ("PT1M1S", D(seconds=61)),
    ("PT1H1M1S", D(seconds=3661)),
    ("P1DT1H1M1S", D(days=1, seconds=3661)),
    ("P1Y2M3DT4H5M6S", D(days=423, seconds=14706)),  # the man page's example
    # the pre-1.6.1 syntax
    ("5m", D(minutes=5)),
    ("1d 2h", D(days=1, hours=2)),
    ("1d  2h", D(days=1, hours=2)),
    (" 5m", D(minutes=5)),
    ("1w 1s", D(days=7, seconds=1)),
    ("30s 30s", D(minutes=1)),
]

# Texts the reference refuses, or (marked) that we refuse on purpose.
REFUSED = [
    "P",
    "PT",
    "P1DT",
    "pt5m",
    "PT0.5S",
    "PT1.5S",
    "P1W1D",
    "P1WT1H",
    "PT1H1S",  # H then S skips M
    "P1Y1D",  # Y then D skips M
    "P1YT1H",  # reference quirk: T only after D
    "P1MT1S",
    "P1Y1MT1H",
    "P1H",
    "PT1D",
    "PT1S1M",
    "P1D1Y",
    "P-1D",
    "P+1D",
    " PT5M",
    "PT5M ",
    "1d2h",
    "5x",
    "10",
    "5M",
    "5 m",
    "5ms",
    "",  # ours: the reference read "" as zero
    "   ",  # ours
    "-5m",  # ours: the reference gave a negative duration
    "+5m",  # ours
    "1_0m",  # ours
    "\u0665m",  # ours: ASCII digits only
    "P\u0665D",  # ours
    "P99999999999999999D",  # out of timedelta's range
    "P" + "9" * 5000 + "D",  # beyond int()'s digit limit
    "9999999999999w",
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_accepted_like_the_reference(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", REFUSED)
def test_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a duration") as info:
        parse_duration(text)
    assert info.value.origin is None
    assert str(info.value) == f"{text!r} is not a duration"


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (D(0), "PT0S"),
        (D(seconds=1), "PT1S"),
        (D(minutes=5), "PT5M"),
        (D(minutes=15), "PT15M"),
        (D(hours=1, seconds=1), "PT1H0M1S"),
        (D(hours=2, minutes=3), "PT2H3M"),
        (D(days=1), "P1D"),
        (D(days=1, hours=2), "P1DT2H"),
        (D(days=3, seconds=5), "P3DT5S"),
        (D(days=7), "P1W"),
        (D(days=364), "P52W"),
        (D(days=8), "P8D"),
        (D(days=14, seconds=1), "P14DT1S"),
    ],
)
def test_format_rfc3339_is_canonical(td: timedelta, text: str) -> None:
    assert format_rfc3339(td) == text
    assert parse_duration(text) == td


whole_seconds = st.integers(min_value=0, max_value=D.max.days * 86400 + 86399).map(
    lambda s: D(seconds=s)
)


@given(whole_seconds)
def test_rfc3339_round_trip(td: timedelta) -> None:
    assert parse_duration(format_rfc3339(td)) == td


@given(whole_seconds)
def test_ctl_parser_reads_our_rfc3339(td: timedelta) -> None:
    assert parse_ctl_duration(format_rfc3339(td)) == td


@pytest.mark.parametrize("td", [D(seconds=-1), D(milliseconds=500), D(seconds=1, microseconds=1)])
def test_format_rfc3339_refuses_what_cannot_be_read_back(td: timedelta) -> None:
    with pytest.raises(ValueError, match="whole number of seconds"):
        format_rfc3339(td)


@given(st.text())
def test_parse_duration_raises_only_config_error(text: str) -> None:
    try:
        value = parse_duration(text)
    except ConfigError:
        return
    assert value >= D(0)


@given(st.text(alphabet="PTYMWDHS0123456789 smhdw.-", max_size=20))
def test_parse_duration_on_near_misses(text: str) -> None:
    try:
        value = parse_duration(text)
    except ConfigError:
        return
    assert value >= D(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT5M", D(minutes=5)),
        ("5m 30s", D(seconds=330)),
        ("1d2h", D(days=1, hours=2)),  # any run of tokens, no spaces needed
        ("5", D(milliseconds=5)),  # a bare number is milliseconds
        ("5M", D(milliseconds=5)),  # upper case is not a suffix
        ("-5m", D(minutes=5)),  # the sign is skipped
        ("1.5s", D(seconds=5, milliseconds=1)),
        ("P1W1D", D(milliseconds=2)),
        (" PT5M", D(milliseconds=5)),
        ("2dxy7zz11y3m5m", D(days=2, seconds=480, milliseconds=18)),  # mandos-ctl's doctest
    ],
)
def test_ctl_duration_like_mandos_ctl(text: str, expected: timedelta) -> None:
    assert parse_ctl_duration(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "P", "9999999999999w"])
def test_ctl_duration_refuses_no_number_and_overflow(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a duration"):
        parse_ctl_duration(text)


@given(st.text())
def test_parse_ctl_duration_raises_only_config_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_ctl_duration(text)


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (D(0), "00:00:00"),
        (D(milliseconds=999), "00:00:00"),  # truncated, as mandos-ctl does
        (D(seconds=1), "00:00:01"),
        (D(milliseconds=1500), "00:00:01"),
        (D(minutes=1), "00:01:00"),
        (D(hours=1), "01:00:00"),
        (D(days=1), "1T00:00:00"),
        (D(days=3, seconds=3723), "3T01:02:03"),
        (D(days=400), "400T00:00:00"),
        (D(milliseconds=359999001), "4T03:59:59"),
    ],
)
def test_format_ctl_like_mandos_ctl(td: timedelta, text: str) -> None:
    assert format_ctl(td) == text
