"""Bad state files at start-up: each is set aside with one line, and the server starts."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.server.conftest import TLSKey, client_section, fetch
from tests.server.ourserver import our_server

SECRET = b"opaque secret"


def _wrong_version(path: Path) -> None:
    path.write_text(json.dumps({"version": 2, "clients": {}}))


def _wrong_field_type(path: Path) -> None:
    path.write_text(json.dumps({"version": 1, "clients": {"c1": {"enabled": "yes"}}}))


def _deeply_nested(path: Path) -> None:
    path.write_text("[" * 1000 + "]" * 1000)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (_wrong_version, "unsupported version 2"),
        (_wrong_field_type, "expected true or false"),
        (_deeply_nested, "is corrupt"),
        (_fifo, "not a regular file"),
        (_dev_zero, "not a regular file"),
    ],
)
def test_bad_state_file_is_set_aside_and_the_server_starts(
    tls_key: TLSKey, tmp_path: Path, make: Callable[[Path], None], needle: str
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    make(state / "clients.json")
    with our_server(client_section("c1", tls_key, SECRET), statedir=state) as server:
        log = server.wait_for_log(needle)
        assert fetch(server.host, server.port, tls_key) == SECRET
        server.wait_for_log("Sending secret to c1")
    lines = [line for line in log.splitlines() if needle in line]
    assert len(lines) == 1
    assert "moved to" in lines[0]
    assert "Traceback" not in log
    asides = [p for p in state.iterdir() if p.name.startswith("clients.json.bad-")]
    assert len(asides) == 1
    # The first save wrote a fresh file of the right shape beside the one set aside.
    assert json.loads((state / "clients.json").read_text())["version"] == 1


def test_temp_files_of_killed_saves_are_removed_at_start(tls_key: TLSKey, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    for n in range(5):
        (state / f".clients-{n}xyz.tmp").write_text("{")
    with our_server(client_section("c1", tls_key, SECRET), statedir=state) as server:
        server.wait_for_log("Listening on port")
    assert [p.name for p in state.iterdir()] == ["clients.json"]
