"""mandos-ctl's tables and JSON, from property dicts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mandos.ctl.args import ALL_KEYWORDS
from mandos.ctl.render import DEFAULT_KEYWORDS, HEADERS, dump_json, table, value_text

CLIENT = {
    "Name": "client1", "Enabled": True, "Timeout": 300000, "LastCheckedOK": "",
    "Created": "2026-11-24T22:03:03.838163", "Interval": 120000, "Host": "client1",
    "KeyID": "B072", "Fingerprint": "304F", "CheckerRunning": False,
    "LastEnabled": "2026-11-24T22:03:03", "ApprovalPending": False, "ApprovedByDefault": True,
    "LastApprovalRequest": "", "ApprovalDelay": 30000, "ApprovalDuration": 1000,
    "Checker": "fping -q -- %(host)s", "ExtendedTimeout": 900000, "Expires": "",
    "LastCheckerStatus": -2,
}  # fmt: skip
OTHER = {**CLIENT, "Name": "other-one.x", "Enabled": False, "Timeout": 93600000}


@pytest.mark.parametrize(
    ("keyword", "value", "text"),
    [
        ("Enabled", True, "Yes"),
        ("CheckerRunning", False, "No"),
        ("Timeout", 300000, "00:05:00"),
        ("Interval", 93600000, "1T02:00:00"),
        ("ApprovalDuration", 1999, "00:00:01"),
        ("ExtendedTimeout", 0, "00:00:00"),
        ("LastCheckerStatus", -2, "-2"),
        ("Created", "2026-11-24T22:03:03", "2026-11-24T22:03:03"),
    ],
)
def test_value_text(keyword: str, value: object, text: str) -> None:
    assert value_text(keyword, value) == text


def test_default_table_as_the_reference_prints_it() -> None:
    assert table([CLIENT, OTHER], DEFAULT_KEYWORDS) == (
        "Name        Enabled Timeout    Last Successful Check\n"
        "client1     Yes     00:05:00                        \n"
        "other-one.x No      1T02:00:00                      "
    )


def test_no_clients_gives_the_header() -> None:
    assert table([], DEFAULT_KEYWORDS) == "Name Enabled Timeout Last Successful Check"


def test_verbose_headers_in_order() -> None:
    header = table([CLIENT], ALL_KEYWORDS).splitlines()[0]
    assert header.split("  ")[0].startswith("Name")
    assert [HEADERS[k] for k in ALL_KEYWORDS][-1] == "Last Checker Status"
    assert header.endswith("Last Checker Status")


def test_json_dump() -> None:
    text = dump_json([CLIENT], ALL_KEYWORDS)
    assert text.startswith(
        '{\n    "client1": {\n        "Name": "client1",\n        "Enabled": true,'
    )
    assert list(json.loads(text)["client1"]) == list(ALL_KEYWORDS)


names = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)


@given(st.lists(names, min_size=1, max_size=5, unique=True))
def test_columns_line_up(client_names: list[str]) -> None:
    rows = table([{**CLIENT, "Name": n} for n in client_names], DEFAULT_KEYWORDS).splitlines()
    assert len({len(row) for row in rows}) == 1
    width = max(len("Name"), *(len(n) for n in client_names))
    assert all(row[width] == " " for row in rows)
