from __future__ import annotations

import asyncio
import os
from pathlib import Path

from mandos.adapters.checkers import CheckerRunner

Result = tuple[str, int | None, int | None]


async def _run_until_exit(command: str) -> Result:
    done: asyncio.Queue[Result] = asyncio.Queue()
    runner = CheckerRunner(lambda *a: done.put_nowait(a))
    await runner.start("c1", command)
    try:
        return await asyncio.wait_for(done.get(), 30)
    finally:
        await runner.aclose()


async def test_success_reports_zero() -> None:
    assert await _run_until_exit("true") == ("c1", 0, None)


async def test_failure_reports_status() -> None:
    assert await _run_until_exit("exit 3") == ("c1", 3, None)


async def test_signal_death_reports_signal() -> None:
    assert await _run_until_exit("kill -9 $$") == ("c1", None, 9)


async def test_runs_in_root_dir_with_null_stdin(tmp_path: Path) -> None:
    out = tmp_path / "out"
    await _run_until_exit(f"pwd > {out}; cat >> {out}")
    assert out.read_text() == "/\n"


async def test_no_overlap_and_stop_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    calls: list[Result] = []
    runner = CheckerRunner(lambda *a: calls.append(a))
    await runner.start("c1", f"sleep 60 & echo $! > {pidfile}; wait")
    await runner.start("c1", "true")  # ignored: one checker per client at a time
    assert runner.is_running("c1")
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.02)
    grandchild = int(pidfile.read_text())
    runner.stop("c1")
    await runner.aclose()
    assert not runner.is_running("c1")
    assert calls == []
    for _ in range(100):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the checker's child survived stop()")


async def test_last_output_line_is_kept() -> None:
    done: asyncio.Queue[Result] = asyncio.Queue()
    runner = CheckerRunner(lambda *a: done.put_nowait(a))
    assert runner.last_output("c1") is None
    await runner.start("c1", "echo first; echo 'host unreachable' >&2; echo; exit 1")
    try:
        assert await asyncio.wait_for(done.get(), 30) == ("c1", 1, None)
    finally:
        await runner.aclose()
    assert runner.last_output("c1") == "host unreachable"


async def test_a_child_holding_the_output_does_not_delay_the_exit() -> None:
    done: asyncio.Queue[Result] = asyncio.Queue()
    runner = CheckerRunner(lambda *a: done.put_nowait(a))
    await runner.start("c1", "echo hello; sleep 30 &")
    try:
        assert await asyncio.wait_for(done.get(), 10) == ("c1", 0, None)
        assert runner.last_output("c1") == "hello"
    finally:
        runner.stop("c1")
        await runner.aclose()
