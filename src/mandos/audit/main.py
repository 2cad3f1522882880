"""mandos-audit: check and read the server's audit trail (see mandos-audit(8)).

``verify FILE...`` checks the hash chain through the files given, oldest first (logrotate's
``audit.jsonl.2.gz audit.jsonl.1 audit.jsonl``), and names the first bad line and why.
``show`` prints the records, filtered by client and time. Exit status: 0 all good, 1 the
chain is broken, 2 a usage error, 66 a file cannot be read.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from mandos import __version__
from mandos.core.audit_record import LOG_OPENED, AuditChainError, ChainVerifier, parse_record
from mandos.core.durations import parse_duration
from mandos.core.errors import ConfigError, MandosError

PROG: Final = "mandos-audit"
DEFAULT_FILE: Final = "/var/lib/mandos/audit.jsonl"
EX_NOINPUT: Final = 66


class BrokenChain(MandosError):
    """A record is bad or does not follow the one before it."""

    def __init__(self, file: str, line: int, reason: str) -> None:
        super().__init__(f"{file}:{line}: {reason}")
        self.file, self.line, self.reason = file, line, reason


class Unreadable(MandosError):
    """An audit file cannot be read."""

    exit_code = EX_NOINPUT


def read_lines(path: str) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line without newline, whether it ended with a newline) of ``path``."""
    try:
        if path.endswith(".gz"):
            with gzip.open(path) as f:
                data = f.read()
        else:
            data = Path(path).read_bytes()
    except (OSError, EOFError) as exc:
        raise Unreadable(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    lines = data.split(b"\n")
    tail = lines.pop()
    for number, line in enumerate(lines, 1):
        yield number, line, True
    if tail:
        yield len(lines) + 1, tail, False


@dataclass(frozen=True)
class Summary:
    """A chain that verified: how many records, the seq range, and its last hash."""

    records: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str | None


def verify(paths: Sequence[str]) -> Summary:
    """Check the chain through ``paths`` in order.

    Raises:
        BrokenChain: the first bad line (file, number, reason).
        Unreadable: a file cannot be read.
    """
    checker = ChainVerifier()
    first: int | None = None
    for path in paths:
        for number, line, whole in read_lines(path):
            if not whole:
                raise BrokenChain(path, number, "truncated mid-line (no newline at the end)")
            try:
                record = checker.feed(line)
            except AuditChainError as exc:
                raise BrokenChain(path, number, str(exc)) from None
            if number == 1 and record["seq"] != 0 and record["event"] != LOG_OPENED:
                raise BrokenChain(
                    path, 1, "the file does not start with a log_opened record (lines removed?)"
                )
            if first is None:
                first = int(str(record["seq"]))
    head = checker.head
    if head is None:
        return Summary(0, None, None, None)
    return Summary(checker.count, first, head.seq - 1, head.hash)


def _since(text: str, now: datetime) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            return now - parse_duration(text)
        except ConfigError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither a date and time (2026-12-01T08:00) nor a duration (PT2H)"
            ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _record_time(record: dict[str, object]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(record.get("time", "")).replace("Z", "+00:00"))
    except ValueError:
        return None


def show_line(record: dict[str, object]) -> str:
    """One record for people: time, event, then the other fields as key=value."""
    skip = {"time", "event", "seq", "prev", "hash"}
    rest = " ".join(f"{k}={record[k]}" for k in sorted(record) if k not in skip)
    return f"{record.get('time')}  {record.get('event')}  {rest}".rstrip()


def show(
    paths: Sequence[str], client: str | None, since: datetime | None
) -> Iterator[dict[str, object]]:
    """The records of ``paths`` that match; a damaged line is skipped with a note on stderr."""
    for path in paths:
        for number, line, whole in read_lines(path):
            if not whole:
                print(f"{PROG}: {path}:{number}: skipped: truncated mid-line", file=sys.stderr)
                continue
            try:
                record = parse_record(line)
            except AuditChainError as exc:
                print(f"{PROG}: {path}:{number}: skipped: {exc}", file=sys.stderr)
                continue
            if client is not None and record.get("client") != client:
                continue
            when = _record_time(record)
            if since is not None and (when is None or when < since):
                continue
            yield record


def build_parser() -> argparse.ArgumentParser:
    """mandos-audit's command line."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Check and read the Mandos server's audit trail."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = sub.add_parser(
        "verify",
        help="check the hash chain; exit 0, or name the first bad line",
        description="Check the hash chain through FILEs, oldest first.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="audit files, oldest first")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    look = sub.add_parser(
        "show", help="print records", description="Print the records of the audit trail."
    )
    look.add_argument("files", nargs="*", metavar="FILE", help=f"default: {DEFAULT_FILE}")
    look.add_argument("--client", metavar="NAME", help="only records of client NAME")
    look.add_argument(
        "--since",
        metavar="TIME",
        type=lambda t: _since(t, datetime.now(UTC)),
        help="only records from TIME on: a date and time (UTC unless given) or a duration"
        " back from now (PT2H, 1d)",
    )
    look.add_argument("--json", action="store_true", help="print each record as a JSON line")
    return parser


def _verify_main(files: Sequence[str], as_json: bool) -> int:
    try:
        summary = verify(files)
    except BrokenChain as exc:
        if as_json:
            error = {"file": exc.file, "line": exc.line, "reason": exc.reason}
            print(json.dumps({"ok": False, "error": error}))
        else:
            print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"ok": True, **summary.__dict__}))
    elif summary.records == 0:
        print("OK: no records")
    else:
        note = ""
        if summary.first_seq:
            note = f" (starts at seq {summary.first_seq}: give older files first to check the link)"
        print(f"OK: {summary.records} records, last hash {summary.last_hash}{note}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run mandos-audit; returns the exit status."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "verify":
            return _verify_main(args.files, args.json)
        for record in show(args.files or [DEFAULT_FILE], args.client, args.since):
            print(json.dumps(record, sort_keys=True) if args.json else show_line(record))
    except MandosError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
