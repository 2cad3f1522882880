"""The audit file adapter: group commit, resuming, torn tails (adapters/audit_log.py)."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mandos.adapters.audit_log import AuditError, AuditLog
from mandos.audit.main import verify

T0 = datetime(2026, 12, 2, tzinfo=UTC)


async def _burst(path: Path, n: int) -> None:
    log = AuditLog(path, lambda: T0)
    task = asyncio.create_task(log.run())
    await asyncio.gather(
        *(log.record_durably("secret_sent", {"client": f"c{i}"}) for i in range(n))
    )
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_a_burst_is_group_committed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fsyncs: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        fsyncs.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    path = tmp_path / "audit.jsonl"
    asyncio.run(_burst(path, 300))
    assert verify([str(path)]).records == 301  # log_opened, then the burst
    assert len(fsyncs) < 300 / 5, f"{len(fsyncs)} fsyncs for 300 records"
    assert path.stat().st_mode & 0o777 == 0o600


def test_torn_tail_is_cut_when_opened(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "audit.jsonl"
    asyncio.run(_burst(path, 3))
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"event":"secret_se')
    asyncio.run(_burst(path, 2))
    assert "cut 19 bytes of a torn last line" in caplog.text
    assert verify([str(path)]).records == 6  # log_opened and five
    assert path.read_bytes().startswith(whole)


def test_empty_file_continues_from_the_rotated_one(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    asyncio.run(_burst(path, 2))
    path.rename(tmp_path / "audit.jsonl.1")
    path.touch()
    asyncio.run(_burst(path, 1))
    first = json.loads(path.read_text().splitlines()[0])
    last_old = json.loads((tmp_path / "audit.jsonl.1").read_text().splitlines()[-1])
    assert (first["seq"], first["prev"]) == (last_old["seq"] + 1, last_old["hash"])


def test_damaged_last_record_refuses_to_continue(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    asyncio.run(_burst(path, 2))
    path.write_bytes(path.read_bytes().replace(b'"c1"', b'"cX"'))
    with pytest.raises(AuditError, match="last record is damaged"):
        AuditLog(path, lambda: T0)


def test_a_failed_write_refuses_then_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.jsonl"

    async def run() -> None:
        log = AuditLog(path, lambda: T0)
        path.mkdir()  # cannot be opened for writing
        task = asyncio.create_task(log.run())
        for _ in range(2):
            with pytest.raises(AuditError, match="cannot write the audit log"):
                await log.record_durably("secret_sent", {"client": "a"})
        path.rmdir()
        await log.record_durably("secret_sent", {"client": "b"})
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    assert caplog.text.count("cannot write the audit log") == 1
    assert "can be written again" in caplog.text
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert record["client"] == "b"


def test_missing_directory_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match=r"directory .* does not exist"):
        AuditLog(tmp_path / "nope" / "audit.jsonl", lambda: T0)
