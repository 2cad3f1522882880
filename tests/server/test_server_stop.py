"""SIGTERM under a storm of checker completions always stops the server (issue 10, defect 1).

Python 3.11's ``asyncio.wait_for`` can swallow a cancellation when the awaited thing completes
in the same loop step (CPython gh-86296); a scheduler waiting that way kept running after
SIGTERM in about 1 of 20 starts. The server is started with 5,000 clients whose checkers
(``true``) finish all the time, and stopped 1-4 s after it listens, again and again.
"""

from __future__ import annotations

import json
import random
import secrets
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.server.ourserver import our_server

CLIENTS = 5000
TRIES = 20
STOP_LIMIT_SECONDS = 15.0


def _storm_conf(n: int, interval: str) -> str:
    sections = [
        f"[c{i}]\nkey_id = {secrets.token_hex(32)}\nsecret = AAAA\nhost = h{i}\n" for i in range(n)
    ]
    return f"[DEFAULT]\nchecker = true\ninterval = {interval}\n\n" + "\n".join(sections)


def _start_and_stop(conf: str, state: Path, pause: float) -> str | None:
    """Start, SIGTERM after ``pause`` s of serving; None if it stopped well, else why not."""
    state.mkdir()
    with our_server(conf, statedir=state, startup_timeout=60) as server:
        time.sleep(pause)
        server.signal(signal.SIGTERM)
        try:
            server.process.wait(STOP_LIMIT_SECONDS)
        except subprocess.TimeoutExpired:
            return f"SIGTERM lost after {pause:.2f} s: the server kept running"
        if server.process.returncode != 0:
            return f"exit status {server.process.returncode}:\n{server.log_text()[-2000:]}"
    saved = json.loads((state / "clients.json").read_text())
    return None if len(saved["clients"]) == CLIENTS else "state not saved"


@pytest.mark.slow
def test_sigterm_stops_the_server_under_a_checker_storm(tmp_path: Path) -> None:
    conf = _storm_conf(CLIENTS, "PT20S")  # 250 checkers a second: a harsher storm than PT2M
    rng = random.Random(10)
    # Listening takes 0.5-1 s (start-up, 5,000 sections): SIGTERM 1-4 s after start. Two
    # servers at a time: half the wall time, and each one's storm loads the other.
    pauses = [rng.uniform(0.3, 3.0) for _ in range(TRIES)]
    states = [tmp_path / f"s{i}" for i in range(TRIES)]
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(_start_and_stop, [conf] * TRIES, states, pauses))
    failures = [f"try {i + 1}: {why}" for i, why in enumerate(outcomes) if why is not None]
    assert not failures, "\n".join(failures)
