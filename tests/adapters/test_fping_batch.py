"""Batched fping checkers give every client the outcome its own ``fping -q -- HOST`` would have.

The proof runs in a pair of network namespaces: reachable hosts (the peer over IPv4 and IPv6
link-local, the namespace's own addresses, loopback), unreachable ones (an on-link address
nobody answers, a network with no route), a name that does not resolve, and a host the shell
must quote. A wrapper ``fping`` first in PATH logs every run, so the test also sees that the
batchable checkers went to one fping run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mandos.adapters.checkers import CheckerRunner
from mandos.adapters.fping_batch import FpingBatcher, fping_host, parse_results
from tests.netns import requires_netns, veth_pair_namespaces

REPO = Path(__file__).resolve().parents[2]

HOSTS = [
    "10.231.0.2",  # the peer namespace
    "10.231.0.2",  # a second client with the same host
    "10.231.0.1",  # our own end
    "127.0.0.1",
    "::1",
    "fe80::b%mnd0",  # the peer, IPv6 link-local
    "10.231.0.99",  # on the link, nobody answers ARP
    "fe80::99%mnd0",  # on the link, nobody answers neighbour discovery
    "10.232.0.1",  # no route
    "no-such-host.invalid",  # does not resolve: fping exits 2
    "a b",  # the shell must quote it: not batchable, one process as before
]


def test_fping_host_takes_only_the_exact_default_command() -> None:
    assert fping_host("fping -q -- 10.0.0.1") == "10.0.0.1"
    assert fping_host("fping -q -- fe80::1%eth0") == "fe80::1%eth0"
    assert fping_host("fping -q -- 'a b'") is None
    assert fping_host("fping -q -- a; rm -rf /") is None
    assert fping_host("fping -q -r 1 -- host") is None
    assert fping_host("fping -q -- -x") is None
    assert fping_host(" fping -q -- host") is None
    assert fping_host("fping -q -- h\u00e9") is None


def test_parse_results_reads_alive_and_unreachable_lines() -> None:
    out = b"a is alive\nb is unreachable\nc is alive (retry 1)\nICMP noise\n"
    assert parse_results(out) == {"a": 0, "b": 1, "c": 0}


def _run_probe(ns: str, mode: str, wrapper_dir: Path) -> dict[str, list[object]]:
    env = dict(os.environ, PATH=f"{wrapper_dir}:{os.environ['PATH']}", PYTHONPATH=str(REPO))
    argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.adapters.fping_probe", mode]
    done = subprocess.run(
        [*argv, *HOSTS],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
        cwd=REPO,
    )
    result: dict[str, list[object]] = json.loads(done.stdout)
    return result


@requires_netns
@pytest.mark.skipif(shutil.which("fping") is None, reason="needs fping")
def test_batched_outcomes_equal_one_process_per_client(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    wrapper = tmp_path / "bin" / "fping"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {shutil.which("fping")} "$@"\n')
    wrapper.chmod(0o755)
    with veth_pair_namespaces("fpb") as (a, _b):
        single = _run_probe(a.name, "single", wrapper.parent)
        single_runs = log.read_text().splitlines()
        log.unlink()
        batched = _run_probe(a.name, "batch", wrapper.parent)
        batched_runs = log.read_text().splitlines()
    assert batched == single
    outcome = {host: code for host, code, _ in single.values()}
    assert outcome["10.231.0.2"] == outcome["fe80::b%mnd0"] == outcome["127.0.0.1"] == 0
    assert outcome["10.231.0.99"] == outcome["fe80::99%mnd0"] == outcome["10.232.0.1"] == 1
    assert outcome["no-such-host.invalid"] == outcome["a b"] == 2
    assert len(single_runs) == len(HOSTS)
    # One run answered every batchable host; only the unresolvable name and the quoted host
    # were asked again the ordinary way.
    batch_runs = [r for r in batched_runs if not r.startswith("-q ")]
    assert len(batch_runs) == 1
    assert batch_runs[0].split()[1:] == sorted({h for h in HOSTS if fping_host(f"fping -q -- {h}")})
    assert sorted(r for r in batched_runs if r.startswith("-q ")) == [
        "-q -- a b",
        "-q -- no-such-host.invalid",
    ]


async def test_other_checker_commands_keep_one_process_each() -> None:
    results: dict[str, tuple[int | None, int | None]] = {}
    both = asyncio.Event()

    def on_exit(name: str, rc: int | None, sig: int | None) -> None:
        results[name] = (rc, sig)
        if len(results) == 2:
            both.set()

    runner = CheckerRunner(on_exit)
    await runner.start("c1", "exit 3")
    await runner.start("c2", "fping -q -r 0 -- 127.0.0.1; exit 4")
    async with asyncio.timeout(30):
        await both.wait()
    await runner.aclose()
    assert results == {"c1": (3, None), "c2": (4, None)}


async def test_stopped_checker_reports_nothing_and_its_run_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "pid"
    slow = tmp_path / "fping"  # an fping that never answers, so the stop comes first
    slow.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 60\n")
    slow.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    calls: list[str] = []

    async def fallback(name: str, _command: str) -> None:
        calls.append(f"fallback {name}")

    batcher = FpingBatcher(lambda name, *_: calls.append(name), fallback, window=0.01)
    assert batcher.offer("c1", "fping -q -- 127.0.0.1")
    assert batcher.offer("c2", "fping -q -- 127.0.0.2")
    assert not batcher.offer("c3", "true")
    assert batcher.owns("c1")
    assert not batcher.owns("c3")
    for _ in range(1500):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.02)  # a file written by another process
    batcher.drop("c1")  # c2 still waits: the run goes on
    os.kill(int(pidfile.read_text()), 0)
    batcher.drop("c2")
    assert not batcher.owns("c1")
    assert not batcher.owns("c2")
    await batcher.aclose()  # returns only once the run has ended: it was killed
    assert calls == []
    assert batcher.runs_started == 1


async def test_full_batch_starts_at_once_and_aclose_drops_pending() -> None:
    seen: list[tuple[str, int | None]] = []
    both = asyncio.Event()

    async def fallback(_name: str, command: str) -> None:
        raise AssertionError(command)

    def on_exit(name: str, rc: int | None, _sig: int | None) -> None:
        seen.append((name, rc))
        if len(seen) == 2:
            both.set()

    batcher = FpingBatcher(on_exit, fallback, max_hosts=2)
    batcher.offer("c1", "fping -q -- 127.0.0.1")
    batcher.offer("c2", "fping -q -- ::1")  # the second host fills the batch: no window wait
    batcher.offer("c3", "fping -q -- 127.0.0.2")  # waits for the window, then aclose drops it
    async with asyncio.timeout(30):
        await both.wait()
    await batcher.aclose()
    assert sorted(seen) == [("c1", 0), ("c2", 0)]
    assert not batcher.owns("c3")
