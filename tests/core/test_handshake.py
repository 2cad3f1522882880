from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mandos.core.errors import RemoteProtocolError
from mandos.core.handshake import (
    DEFAULT_MAX_LINE,
    NEED_DATA,
    VersionLine,
    VersionOK,
    parse_version_line,
)

Result = VersionOK | str  # a VersionOK, "need data" or an error message


def feed(chunks: list[bytes], *, eof: bool = False) -> tuple[Result, bytes]:
    """Feed chunks, asking for an event after each; the final result and the trailing bytes."""
    vl = VersionLine()
    result: Result = "need data"
    try:
        for chunk in filter(None, chunks):  # b"" would mean end of file
            vl.receive_data(chunk)
            event = vl.next_event()
            if event is not NEED_DATA:
                result = event
        if eof:
            vl.receive_data(b"")
            event = vl.next_event()
            if event is not NEED_DATA:
                result = event
    except RemoteProtocolError as exc:
        return str(exc), b""
    return result, vl.trailing


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"1\r\n", VersionOK(1)),
        (b"1\n", VersionOK(1)),
        (b"0\n", VersionOK(0)),
        (b"  1 extra words\r\n", VersionOK(1)),
        (b"-3\n", VersionOK(-3)),
        (b"+1\n", VersionOK(1)),
        (b"2\r\n", "Unknown protocol version: '2'"),
        (b"x\n", "Unknown protocol version: 'x'"),
        (b"1.0\n", "Unknown protocol version: '1.0'"),
        (b"\xff\n", "Unknown protocol version: '\\\\xff'"),
        (b"\r\n", "Empty protocol version line"),
        (b"\n", "Empty protocol version line"),
        (b"1", "need data"),
        (b"1\r", "need data"),
        (b"9" * DEFAULT_MAX_LINE, "need data"),
        (b"1" + b" " * (DEFAULT_MAX_LINE - 1) + b"\n", VersionOK(1)),
        (b"1" + b" " * DEFAULT_MAX_LINE, "Protocol version line longer than 64 bytes"),
        (b"1" + b" " * DEFAULT_MAX_LINE + b"\n", "Protocol version line longer than 64 bytes"),
    ],
)
def test_version_line_table(data: bytes, expected: Result) -> None:
    assert feed([data])[0] == expected


def test_eof_before_the_line_is_an_error() -> None:
    assert feed([b"1"], eof=True)[0] == "Connection closed before the protocol version line"


def test_eof_after_the_line_is_fine() -> None:
    assert feed([b"1\r\n"], eof=True)[0] == VersionOK(1)


def test_trailing_bytes_are_kept() -> None:
    vl = VersionLine()
    assert vl.trailing == b""
    vl.receive_data(b"1\r\n\x16\x03")
    assert vl.next_event() == VersionOK(1)
    assert vl.trailing == b"\x16\x03"
    vl.receive_data(b"more")
    assert vl.next_event() == VersionOK(1)
    assert vl.trailing == b"\x16\x03more"


def test_errors_are_sticky() -> None:
    vl = VersionLine()
    vl.receive_data(b"7\n")
    with pytest.raises(RemoteProtocolError) as first:
        vl.next_event()
    vl.receive_data(b"1\n")
    with pytest.raises(RemoteProtocolError) as second:
        vl.next_event()
    assert first.value is second.value


def test_custom_bound() -> None:
    vl = VersionLine(max_line=3)
    vl.receive_data(b"1  ")
    assert vl.next_event() is NEED_DATA
    vl.receive_data(b" ")
    with pytest.raises(RemoteProtocolError, match="longer than 3"):
        vl.next_event()


def test_parse_version_line() -> None:
    assert parse_version_line(b"1") == 1
    # Every client's line (its "\r" left on), answered first, as the general rule would.
    assert parse_version_line(b"1\r") == parse_version_line(b"1\t") == 1
    with pytest.raises(RemoteProtocolError):
        parse_version_line(b"   ")


@given(st.binary(max_size=200))
def test_any_bytes_give_a_result_or_a_protocol_error(data: bytes) -> None:
    result, trailing = feed([data], eof=True)
    assert isinstance(result, VersionOK | str)
    if isinstance(result, VersionOK):
        assert result.version <= 1
        assert data.endswith(trailing)


@given(st.binary(max_size=120), st.booleans())
def test_byte_by_byte_equals_all_at_once(data: bytes, eof: bool) -> None:
    assert feed([data[i : i + 1] for i in range(len(data))], eof=eof) == feed([data], eof=eof)


@given(st.lists(st.binary(min_size=1, max_size=10), max_size=12), st.booleans())
def test_any_split_equals_all_at_once(chunks: list[bytes], eof: bool) -> None:
    assert feed(chunks, eof=eof) == feed([b"".join(chunks)], eof=eof)


@given(st.integers(max_value=1), st.sampled_from([b"\n", b"\r\n"]), st.binary(max_size=20))
def test_good_lines_are_accepted(version: int, end: bytes, rest: bytes) -> None:
    assert feed([str(version).encode() + end + rest]) == (VersionOK(version), rest)
