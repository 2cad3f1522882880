"""mandos-audit verify / show on files written by the real AuditLog."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mandos.adapters.audit_log import AuditLog
from mandos.audit.main import BrokenChain, main, verify

T0 = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)


def write_log(path: Path, events: list[tuple[str, dict[str, str | int | None]]]) -> None:
    clock = iter(T0 + timedelta(minutes=i) for i in range(1000))

    async def run() -> None:
        log = AuditLog(path, lambda: next(clock))
        task = asyncio.create_task(log.run())
        for event, fields in events:
            await log.record_durably(event, fields)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())


EVENTS: list[tuple[str, dict[str, str | int | None]]] = [
    ("client_added", {"client": "alpha", "cause": "startup"}),
    ("secret_sent", {"client": "alpha", "key_id": "AB" * 32, "address": "127.0.0.1"}),
    ("refused", {"client": None, "key_id": "CD" * 32, "reason": "unknown key"}),
    ("client_disabled", {"client": "alpha", "cause": "dbus", "uid": 0}),
    ("secret_sent", {"client": "beta", "key_id": "EF" * 32, "address": "::1"}),
]


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    write_log(path, EVENTS)
    return path


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_verify_passes(log_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(log_file)]) == 0
    assert capsys.readouterr().out.startswith("OK: 6 records, last hash ")  # log_opened + 5


def test_verify_json(log_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--json", str(log_file)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True
    assert result["records"] == 6


def _fails_at(path: Path, line: int, capsys: pytest.CaptureFixture[str], why: str) -> None:
    assert main(["verify", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mandos-audit: {path}:{line}: "), err
    assert why in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("index", [0, 2, 4])
def test_one_changed_byte_is_named(
    log_file: Path, capsys: pytest.CaptureFixture[str], index: int
) -> None:
    data = bytearray(log_file.read_bytes())
    offset = (
        sum(len(x) for x in lines(log_file)[:index])
        + data[sum(len(x) for x in lines(log_file)[:index]) :].index(b'"event":"')
        + 9
    )
    data[offset] ^= 0x01  # one letter of the event name
    log_file.write_bytes(bytes(data))
    _fails_at(log_file, index + 1, capsys, "")


def test_deleted_line_is_named(log_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kept = lines(log_file)
    del kept[2]
    log_file.write_bytes(b"".join(kept))
    _fails_at(log_file, 3, capsys, "missing")


def test_swapped_lines_are_named(log_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kept = lines(log_file)
    kept[1], kept[2] = kept[2], kept[1]
    log_file.write_bytes(b"".join(kept))
    _fails_at(log_file, 2, capsys, "seq")


def test_truncated_mid_line_is_named(log_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = log_file.read_bytes()
    log_file.write_bytes(data[: len(data) - 20])
    _fails_at(log_file, 6, capsys, "truncated mid-line")


def test_rotated_files_verify_as_one_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.jsonl"
    write_log(path, EVENTS[:3])
    old = tmp_path / "audit.jsonl.1"
    path.rename(old)
    write_log(path, EVENTS[3:])  # resumes from audit.jsonl.1's last record
    assert json.loads(lines(path)[0])["prev"] == json.loads(lines(old)[-1])["hash"]
    with gzip.open(tmp_path / "audit.jsonl.1.gz", "wb") as f:
        f.write(old.read_bytes())
    assert main(["verify", str(tmp_path / "audit.jsonl.1.gz"), str(path)]) == 0
    assert "OK: 7 records" in capsys.readouterr().out  # each file begins with log_opened
    assert main(["verify", str(path), str(old)]) == 1  # wrong order breaks the chain
    capsys.readouterr()
    path.write_bytes(b"".join(lines(path)[1:]))  # a rotated file's first line removed
    assert main(["verify", str(path)]) == 1
    assert "does not start with a log_opened record" in capsys.readouterr().err


def test_show_filters_by_client_and_time(
    log_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "--client", "alpha", str(log_file)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in out] == ["client_added", "secret_sent", "client_disabled"]
    assert main(["show", "--json", "--since", "2026-12-02T11:03", str(log_file)]) == 0
    shown = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["seq"] for r in shown] == [3, 4, 5]


def test_unreadable_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(tmp_path / "nope")]) == 66
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "nope" in err


def test_bad_since_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["show", "--since", "yesterday-ish"])
    assert exc.value.code == 2
    assert "neither a date" in capsys.readouterr().err


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=200)
@given(st.data())
def test_any_changed_byte_anywhere_is_caught(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    original = _shared_log(tmp_path_factory).read_bytes()
    position = data.draw(st.integers(0, len(original) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]))
    tampered = bytearray(original)
    tampered[position] = byte
    path = tmp_path_factory.mktemp("tamper") / "audit.jsonl"
    path.write_bytes(bytes(tampered))
    with pytest.raises(BrokenChain):
        verify([str(path)])


def test_any_removed_or_moved_line_is_caught(log_file: Path) -> None:
    original = lines(log_file)
    for i in range(len(original) - 1):  # removing the very last line needs the hash kept aside
        kept = original[:i] + original[i + 1 :]
        log_file.write_bytes(b"".join(kept))
        with pytest.raises(BrokenChain):
            verify([str(log_file)])
        for j in range(len(original)):
            if j != i:
                moved = original[:i] + original[i + 1 :]
                moved.insert(j, original[i])
                log_file.write_bytes(b"".join(moved))
                with pytest.raises(BrokenChain):
                    verify([str(log_file)])


_SHARED: dict[str, Path] = {}


def _shared_log(factory: pytest.TempPathFactory) -> Path:
    if "log" not in _SHARED:
        path = factory.mktemp("shared") / "audit.jsonl"
        write_log(path, EVENTS)
        _SHARED["log"] = path
    return _SHARED["log"]
