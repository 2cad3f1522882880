"""mandos-ctl's output, as pure functions of client property dicts: tables and JSON.

Formats (observed by running Debian's mandos-ctl 1.8.16 against its server):
- Table: one header line, then one line per client. Columns are joined by one space, and each
  is left-aligned and padded to the widest of its header and its values (so lines end in
  padding). Booleans are ``Yes``/``No``; the millisecond properties are ``[<days>T]HH:MM:SS``;
  everything else (dates, key IDs, checker status) is shown as the server gives it.
- JSON: ``{name: {keyword: value}}`` for the 20 keywords, ``indent=4``, separators ``,``/``: ``,
  ASCII-escaped, in the clients' order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Final

from mandos.core.durations import format_ctl

__all__ = [
    "DEFAULT_KEYWORDS",
    "HEADERS",
    "MILLISECOND_KEYWORDS",
    "dump_json",
    "table",
    "value_text",
]

Properties = Mapping[str, object]

DEFAULT_KEYWORDS: Final = ("Name", "Enabled", "Timeout", "LastCheckedOK")
MILLISECOND_KEYWORDS: Final = frozenset(
    {"Timeout", "Interval", "ApprovalDelay", "ApprovalDuration", "ExtendedTimeout"}
)
HEADERS: Final[Mapping[str, str]] = {
    "Name": "Name",
    "Enabled": "Enabled",
    "Timeout": "Timeout",
    "LastCheckedOK": "Last Successful Check",
    "Created": "Created",
    "Interval": "Interval",
    "Host": "Host",
    "KeyID": "Key ID",
    "Fingerprint": "Fingerprint",
    "CheckerRunning": "Check Is Running",
    "LastEnabled": "Last Enabled",
    "ApprovalPending": "Approval Is Pending",
    "ApprovedByDefault": "Approved By Default",
    "LastApprovalRequest": "Last Approval Request",
    "ApprovalDelay": "Approval Delay",
    "ApprovalDuration": "Approval Duration",
    "Checker": "Checker",
    "ExtendedTimeout": "Extended Timeout",
    "Expires": "Expires",
    "LastCheckerStatus": "Last Checker Status",
}


def value_text(keyword: str, value: object) -> str:
    """One table cell: ``Yes``/``No``, ``[<days>T]HH:MM:SS`` for milliseconds, else ``str``."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if keyword in MILLISECOND_KEYWORDS and isinstance(value, int):
        return format_ctl(timedelta(milliseconds=value))
    return str(value)


def table(clients: Iterable[Properties], keywords: Sequence[str]) -> str:
    """The table of ``clients`` with the given columns, without a final newline."""
    cells = [[value_text(k, client[k]) for k in keywords] for client in clients]
    widths = [
        max(len(HEADERS[k]), *(len(row[i]) for row in cells)) if cells else len(HEADERS[k])
        for i, k in enumerate(keywords)
    ]
    lines = [[HEADERS[k] for k in keywords], *cells]
    return "\n".join(
        " ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in lines
    )


def dump_json(clients: Iterable[Properties], keywords: Sequence[str]) -> str:
    """The JSON dump of ``clients`` (keyed by their Name), without a final newline."""
    data = {str(c["Name"]): {k: c[k] for k in keywords} for c in clients}
    return json.dumps(data, indent=4, separators=(",", ": "))
