"""mandos-monitor's content as pure functions: client rows, log lines, the client list.

Texts are the reference's (Debian's mandos-monitor 1.8.16), with one fix: dates without
microseconds (``2024-05-01T12:00:00``, which the server writes when they are 0) are read
instead of crashing the monitor (REFERENCE A19.9). Times are naive UTC, as the server's dates
are; ``now`` is always an argument.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

__all__ = [
    "HELP_LINES",
    "ClientList",
    "LogLine",
    "client_not_found_message",
    "log_line",
    "parse_date",
    "row_text",
    "signal_message",
    "timer_text",
    "uses_timer",
]

Properties = Mapping[str, Any]

HELP_LINES: Final = (
    "  ".join(
        ("q: Quit", "?: Help", "l: Log window toggle", "TAB: Switch window",
         "w: Wrap (log lines)", "v: Toggle verbose log")
    ),
    "  ".join(
        ("Clients:", "+: Enable", "-: Disable", "R: Remove", "s: Start new checker",
         "S: Stop checker", "C: Checker OK", "a: Approve", "d: Deny")
    ),
)  # fmt: skip


def parse_date(text: str) -> datetime | None:
    """A server date (``isoformat()`` of naive UTC, microseconds optional); None if unset."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        return None  # not a date: shown as no time left, never a crash


def timer_text(delta: timedelta) -> str:
    """A countdown as the reference shows it: ``str(timedelta)`` without the fraction."""
    return str(delta).rsplit(".", 1)[0]


def row_text(props: Properties, now: datetime) -> str:
    """The one-line text of a client row at time ``now`` (naive UTC)."""
    base = f"{props['Name']}: "
    if not props["Enabled"]:
        return base + "DISABLED"
    if props["ApprovalPending"]:
        delay = timedelta(milliseconds=int(props["ApprovalDelay"]))
        asked = parse_date(str(props["LastApprovalRequest"]))
        left = max(delay - (now - asked), timedelta()) if asked is not None else timedelta()
        if props["ApprovedByDefault"]:
            return base + f"Approval in {timer_text(left)}. (d)eny?"
        return base + f"Denial in {timer_text(left)}. (a)pprove?"
    if props["LastCheckerStatus"] != 0:
        expires = parse_date(str(props["Expires"]))
        left = max(expires - now, timedelta()) if expires is not None else timedelta()
        return base + f"A checker has failed! Time until client gets disabled: {timer_text(left)}"
    return base + "enabled"


def uses_timer(props: Properties) -> bool:
    """Whether the row counts down (and so must be redrawn every second)."""
    if not props["Enabled"]:
        return False
    return bool(props["ApprovalPending"]) or props["LastCheckerStatus"] != 0


@dataclass(frozen=True)
class LogLine:
    """One line of the log pane; ``bold`` for warnings and the banner."""

    text: str
    level: int = logging.INFO
    bold: bool = False


def log_line(when: datetime, level: int, message: str) -> LogLine:
    """A timestamped log line as the reference writes it (``%(asctime)s: %(message)s``)."""
    stamp = when.strftime("%Y-%m-%d %H:%M:%S") + f",{when.microsecond // 1000:03d}"
    return LogLine(f"{stamp}: {message}", level, bold=level > logging.INFO)


def signal_message(name: str, member: str, body: Sequence[Any]) -> tuple[int, str] | None:
    """The (logging level, message) for a client signal, or None if it is not logged."""
    match member, body:
        case "CheckerCompleted", [exitcode, waitstatus, command]:
            if exitcode == 0:
                return logging.DEBUG, f'Checker for client {name} (command "{command}") succeeded'
            if exitcode >= 0:
                return logging.INFO, (
                    f'Checker for client {name} (command "{command}") failed with exit code '
                    f"{exitcode}"
                )
            return logging.INFO, (
                f'Checker for client {name} (command "{command}") was killed by signal '
                f"{int(waitstatus) & 0x7F}"
            )
        case "CheckerStarted", [command]:
            return logging.DEBUG, f'Client {name} started checker "{command}"'
        case "GotSecret", []:
            return logging.INFO, f"Client {name} received its secret"
        case "NeedApproval", [timeout_ms, approved_by_default]:
            seconds = f"{int(timeout_ms) / 1000:f}"
            if approved_by_default:
                return logging.INFO, f"Client {name} will get its secret in {seconds} seconds"
            return logging.INFO, f"Client {name} needs approval within {seconds} seconds"
        case "Rejected", [reason]:
            return logging.INFO, f"Client {name} was rejected; reason: {reason}"
    return None


def client_not_found_message(key_id: str, address: str) -> str:
    """The log message for the server's ClientNotFound signal."""
    return f"Client with address {address} and key ID {key_id} could not be found"


class ClientList:
    """The clients on screen: object path -> properties, listed by name."""

    def __init__(self) -> None:
        self._clients: dict[str, dict[str, Any]] = {}

    def add(self, path: str, props: Properties) -> None:
        """A client appeared (or was listed at start)."""
        self._clients[path] = dict(props)

    def remove(self, path: str) -> str | None:
        """A client went away; its name, or None if it was not known."""
        gone = self._clients.pop(path, None)
        return None if gone is None else str(gone["Name"])

    def update(self, path: str, changed: Properties) -> bool:
        """Properties changed; whether anything shown may differ (the client is known)."""
        props = self._clients.get(path)
        if props is None:
            return False
        props.update(changed)
        return True

    def name(self, path: str) -> str | None:
        """The client's name, if known."""
        props = self._clients.get(path)
        return None if props is None else str(props["Name"])

    def get(self, path: str) -> Properties | None:
        """The client's properties, if known."""
        return self._clients.get(path)

    def paths(self) -> list[str]:
        """The object paths, sorted by client name."""
        return sorted(self._clients, key=lambda p: str(self._clients[p]["Name"]))

    def rows(self, now: datetime) -> list[tuple[str, str]]:
        """(path, row text) for every client, sorted by name."""
        return [(p, row_text(self._clients[p], now)) for p in self.paths()]

    def __len__(self) -> int:
        return len(self._clients)
