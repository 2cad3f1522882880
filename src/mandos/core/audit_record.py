"""The audit trail's records: canonical JSON lines in a SHA-256 hash chain (no I/O, no clock).

Rules of this module:

1. A record is one JSON object on one line, serialised canonically: keys sorted, no spaces,
   ASCII only. So a record has exactly one byte form, and re-serialising what was read must
   give back the same bytes (a changed byte that still parses is caught too).
2. Every record carries ``seq`` (0, 1, 2, ... across rotated files), ``prev`` (the ``hash`` of
   the record before it, ``GENESIS`` for the very first) and ``hash``: the SHA-256 of the
   canonical line *without* its ``hash`` field. Any edit, deletion, insertion or reordering
   breaks a ``hash``, a ``prev`` or a ``seq``, and :class:`ChainVerifier` names the line.
3. A new file (after logrotate) starts with the record that follows the old file's last one:
   its ``prev`` is that record's ``hash``, so files verified together form one chain.
4. Callers pass the time; values are str, int, bool or None. A secret or key material must
   never be a field: the writers only pass names, key IDs, addresses, reasons and causes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

__all__ = [
    "GENESIS",
    "LOG_OPENED",
    "AuditChainError",
    "ChainHead",
    "ChainVerifier",
    "Value",
    "format_time",
    "parse_record",
    "seal",
]

#: ``prev`` of the first record ever written.
GENESIS: Final = "0" * 64
#: The event that begins every file but the very first (which begins at seq 0).
LOG_OPENED: Final = "log_opened"

Value = str | int | bool | None
_RESERVED: Final = frozenset({"seq", "prev", "hash", "time", "event"})


class AuditChainError(ValueError):
    """A line is not a well-formed record, or does not follow the one before it."""


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a chain stands: the next ``seq`` and the ``hash`` the next record must name."""

    seq: int = 0
    hash: str = GENESIS


def format_time(when: datetime) -> str:
    """RFC 3339 UTC with microseconds and a ``Z``, e.g. ``2026-12-02T11:06:27.123456Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical(obj: Mapping[str, object]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _digest(body: Mapping[str, object]) -> str:
    return hashlib.sha256(_canonical(body)).hexdigest()


def seal(
    head: ChainHead, when: datetime, event: str, fields: Mapping[str, Value]
) -> tuple[bytes, ChainHead]:
    """The record's line (with its newline) and the head that follows it."""
    clash = _RESERVED & fields.keys()
    if clash:
        raise ValueError(f"reserved audit field(s): {', '.join(sorted(clash))}")
    body: dict[str, object] = {
        **{k: v for k, v in fields.items() if v is not None},
        "event": event,
        "prev": head.hash,
        "seq": head.seq,
        "time": format_time(when),
    }
    digest = _digest(body)
    body["hash"] = digest
    return _canonical(body) + b"\n", ChainHead(head.seq + 1, digest)


def parse_record(line: bytes) -> dict[str, object]:
    """One line (without its newline) as a record whose own ``hash`` is right.

    Raises:
        AuditChainError: not canonical JSON, a field missing, or the hash does not match.
    """
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        raise AuditChainError("not a JSON record") from None
    if not isinstance(obj, dict):
        raise AuditChainError("not a JSON object")
    if _canonical(obj) != line:
        raise AuditChainError("not in canonical form (edited?)")
    for key, kind in (("seq", int), ("prev", str), ("hash", str), ("time", str), ("event", str)):
        if not isinstance(obj.get(key), kind) or isinstance(obj.get(key), bool):
            raise AuditChainError(f"field {key!r} missing or of the wrong type")
    body = {k: v for k, v in obj.items() if k != "hash"}
    if _digest(body) != obj["hash"]:
        raise AuditChainError("its hash does not match its content (edited?)")
    return obj


class ChainVerifier:
    """Checks records one line at a time; ``head`` is None until the first record anchors it."""

    def __init__(self, head: ChainHead | None = None) -> None:
        self.head = head
        self.count = 0

    def feed(self, line: bytes) -> dict[str, object]:
        """Check the next line (without its newline) and advance.

        Raises:
            AuditChainError: the line is bad or breaks the chain (the message says how).
        """
        record = parse_record(line)
        seq, prev = record["seq"], record["prev"]
        assert isinstance(seq, int)
        assert isinstance(prev, str)
        if self.head is None:
            if seq == 0 and prev != GENESIS:
                raise AuditChainError("the first record (seq 0) does not start the chain")
        elif seq != self.head.seq:
            if seq > self.head.seq:
                raise AuditChainError(
                    f"seq {seq} where {self.head.seq} was expected: a record is missing"
                )
            raise AuditChainError(f"seq {seq} where {self.head.seq} was expected: out of order")
        elif prev != self.head.hash:
            raise AuditChainError("prev does not name the record before it (reordered?)")
        digest = record["hash"]
        assert isinstance(digest, str)
        self.head = ChainHead(seq + 1, digest)
        self.count += 1
        return record
