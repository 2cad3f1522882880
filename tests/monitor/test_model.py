"""mandos-monitor's rows and log lines, as pure functions of properties and now."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import pytest

from mandos.monitor.model import (
    ClientList,
    client_not_found_message,
    log_line,
    parse_date,
    row_text,
    signal_message,
    uses_timer,
)

NOW = datetime(2026, 1, 2, 12, 0, 0)
BASE: dict[str, Any] = {
    "Name": "c1", "Enabled": True, "ApprovalPending": False, "ApprovalDelay": 30000,
    "LastApprovalRequest": "", "ApprovedByDefault": True, "LastCheckerStatus": 0, "Expires": "",
}  # fmt: skip

ROWS = [
    ({"Enabled": False}, "c1: DISABLED"),
    ({}, "c1: enabled"),
    (
        {"ApprovalPending": True, "LastApprovalRequest": "2026-01-02T11:59:50.500000"},
        "c1: Approval in 0:00:20. (d)eny?",
    ),
    (
        {"ApprovalPending": True, "ApprovedByDefault": False,
         "LastApprovalRequest": "2026-01-02T11:59:55"},
        "c1: Denial in 0:00:25. (a)pprove?",
    ),
    ({"ApprovalPending": True, "LastApprovalRequest": "2026-01-01T00:00:00"},
     "c1: Approval in 0:00:00. (d)eny?"),
    ({"LastCheckerStatus": 1, "Expires": "2026-01-03T14:00:00"},
     "c1: A checker has failed! Time until client gets disabled: 1 day, 2:00:00"),
    ({"LastCheckerStatus": -2, "Expires": ""},
     "c1: A checker has failed! Time until client gets disabled: 0:00:00"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "text"), ROWS)
def test_row_text(changes: dict[str, Any], text: str) -> None:
    assert row_text({**BASE, **changes}, NOW) == text


def test_timer_rows() -> None:
    assert not uses_timer(BASE)
    assert uses_timer({**BASE, "ApprovalPending": True})
    assert not uses_timer({**BASE, "Enabled": False, "LastCheckerStatus": 1})


def test_dates_with_and_without_microseconds() -> None:
    assert parse_date("2026-01-02T12:00:00") == NOW  # the reference monitor crashed here
    assert parse_date("2026-01-02T12:00:00.000001") == NOW.replace(microsecond=1)
    assert parse_date("") is None
    assert parse_date("garbage") is None


SIGNALS = [
    ("CheckerCompleted", [0, 0, "true"], logging.DEBUG,
     'Checker for client c1 (command "true") succeeded'),
    ("CheckerCompleted", [3, 768, "false"], logging.INFO,
     'Checker for client c1 (command "false") failed with exit code 3'),
    ("CheckerCompleted", [-1, -256 | 9, "sleep 9"], logging.INFO,
     'Checker for client c1 (command "sleep 9") was killed by signal 9'),
    ("CheckerStarted", ["fping x"], logging.DEBUG, 'Client c1 started checker "fping x"'),
    ("GotSecret", [], logging.INFO, "Client c1 received its secret"),
    ("NeedApproval", [30000, False], logging.INFO,
     "Client c1 needs approval within 30.000000 seconds"),
    ("NeedApproval", [1500, True], logging.INFO,
     "Client c1 will get its secret in 1.500000 seconds"),
    ("Rejected", ["Denied"], logging.INFO, "Client c1 was rejected; reason: Denied"),
]  # fmt: skip


@pytest.mark.parametrize(("member", "body", "level", "text"), SIGNALS)
def test_signal_messages(member: str, body: list[Any], level: int, text: str) -> None:
    assert signal_message("c1", member, body) == (level, text)


def test_other_signals_and_lines() -> None:
    assert signal_message("c1", "PropertyChanged", ["Enabled", True]) is None
    assert client_not_found_message("AB12", "::1") == (
        "Client with address ::1 and key ID AB12 could not be found"
    )
    line = log_line(datetime(2026, 1, 2, 3, 4, 5, 678901), logging.WARNING, "Note: x")
    assert (line.text, line.bold) == ("2026-01-02 03:04:05,678: Note: x", True)


def test_client_list_sorted_by_name() -> None:
    clients = ClientList()
    clients.add("/clients/b", {**BASE, "Name": "b"})
    clients.add("/clients/a", {**BASE, "Name": "a", "Enabled": False})
    assert clients.rows(NOW) == [("/clients/a", "a: DISABLED"), ("/clients/b", "b: enabled")]
    assert clients.update("/clients/a", {"Enabled": True})
    assert not clients.update("/clients/zz", {"Enabled": True})
    assert clients.remove("/clients/b") == "b"
    assert clients.remove("/clients/b") is None
    assert len(clients) == 1
