"""The pure record format and chain (core/audit_record.py)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mandos.core.audit_record import (
    GENESIS,
    AuditChainError,
    ChainHead,
    ChainVerifier,
    parse_record,
    seal,
)

T0 = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)


def chain(n: int, head: ChainHead | None = None) -> list[bytes]:
    head = head or ChainHead()
    lines = []
    for i in range(n):
        line, head = seal(head, T0 + timedelta(seconds=i), "secret_sent", {"client": f"c{i}"})
        lines.append(line.rstrip(b"\n"))
    return lines


def verify(lines: list[bytes]) -> int:
    checker = ChainVerifier()
    for line in lines:
        checker.feed(line)
    return checker.count


def test_record_is_canonical_json_with_chain_fields() -> None:
    line, head = seal(ChainHead(), T0, "refused", {"client": "a", "reason": "disabled"})
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    record = json.loads(line)
    assert record["prev"] == GENESIS
    assert record["seq"] == 0
    assert record["time"] == "2026-12-02T11:00:00.000000Z"
    assert head == ChainHead(1, record["hash"])
    assert list(record) == sorted(record)


def test_none_fields_are_left_out_and_reserved_names_refused() -> None:
    line, _ = seal(ChainHead(), T0, "x", {"client": None})
    assert "client" not in json.loads(line)
    with pytest.raises(ValueError, match="reserved"):
        seal(ChainHead(), T0, "x", {"hash": "0"})


def test_a_whole_chain_verifies() -> None:
    assert verify(chain(5)) == 5


def test_changed_byte_is_caught_on_its_line() -> None:
    lines = chain(4)
    lines[2] = lines[2].replace(b'"c2"', b'"c9"')
    checker = ChainVerifier()
    checker.feed(lines[0])
    checker.feed(lines[1])
    with pytest.raises(AuditChainError, match="hash does not match"):
        checker.feed(lines[2])


def test_non_canonical_edit_is_caught() -> None:
    line = chain(1)[0]
    with pytest.raises(AuditChainError, match="canonical"):
        parse_record(line.replace(b",", b", ", 1))


def test_deleted_line_is_caught() -> None:
    lines = chain(4)
    del lines[1]
    with pytest.raises(AuditChainError, match="missing"):
        verify(lines)


def test_swapped_lines_are_caught() -> None:
    lines = chain(4)
    lines[1], lines[2] = lines[2], lines[1]
    with pytest.raises(AuditChainError, match="missing"):
        verify(lines)


def test_first_record_must_start_the_chain() -> None:
    line, _ = seal(ChainHead(0, "1" * 64), T0, "x", {})
    with pytest.raises(AuditChainError, match="first record"):
        verify([line.rstrip(b"\n")])


def test_a_later_file_is_anchored_by_its_first_record() -> None:
    lines = chain(6)
    assert verify(lines[3:]) == 3


def test_a_record_with_a_forged_prev_is_caught() -> None:
    lines = chain(2)
    head = ChainHead(2, "f" * 64)
    forged, _ = seal(head, T0, "secret_sent", {})
    with pytest.raises(AuditChainError, match="prev"):
        verify([*lines, forged.rstrip(b"\n")])


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_parser_raises_only_chain_errors(data: bytes) -> None:
    with contextlib.suppress(AuditChainError):
        parse_record(data)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["client", "key_id", "address", "reason", "cause"]),
        st.one_of(st.text(max_size=20), st.integers(), st.booleans()),
    )
)
def test_any_fields_round_trip(fields: dict[str, str | int | bool]) -> None:
    line, head = seal(ChainHead(), T0, "event", fields)
    record = parse_record(line.rstrip(b"\n"))
    assert record["hash"] == head.hash
    assert {k: record[k] for k in fields} == fields


def test_a_canonical_object_without_the_chain_fields_is_refused() -> None:
    with pytest.raises(AuditChainError, match="field 'seq' missing"):
        parse_record(b'{"event":"x"}')
    with pytest.raises(AuditChainError, match="not a JSON object"):
        parse_record(b"[1]")


def test_a_repeated_record_is_out_of_order() -> None:
    lines = chain(3)
    with pytest.raises(AuditChainError, match="out of order"):
        verify([lines[0], lines[1], lines[1]])
