"""Threshold 2 of 3 over three of our servers (real processes, loopback, --connect x 3)."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import PASSWORD, OurKeys
from tests.e2e.threshold_setup import CLIENT, conf, make_share_sections, run_client, wait_until
from tests.ports import free_port
from tests.server.ourserver import RunningServer, our_server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def sections(ed25519_keys: OurKeys, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return make_share_sections(ed25519_keys, tmp_path_factory.mktemp("shares") / "out")


@contextlib.contextmanager
def servers(*confs: str | None) -> Iterator[list[RunningServer | None]]:
    """One of our servers per conf; None stands for a stopped server (nothing listens)."""
    with contextlib.ExitStack() as stack:
        yield [None if c is None else stack.enter_context(our_server(c)) for c in confs]


def connects(running: list[RunningServer | None]) -> list[str]:
    return [f"--connect={s.connect if s else f'127.0.0.1:{free_port()}'}" for s in running]


def test_all_three_up_unlocks(ed25519_keys: OurKeys, sections: list[str], tmp_path: Path) -> None:
    with servers(*(conf(s) for s in sections)) as running:
        done = run_client(ed25519_keys, tmp_path, *connects(running))
    assert (done.returncode, done.stdout) == (0, PASSWORD), done.stderr.decode()
    assert b"completes the set" in done.stderr


def test_the_second_share_is_fetched_before_the_first_is_checked(
    ed25519_keys: OurKeys, sections: list[str], tmp_path: Path
) -> None:
    """The first round takes the next server's payload while SLIP-39 may still be loading:
    shares are checked (and logged as kept) once K of them are in hand."""
    with servers(*(conf(s) for s in sections)) as running:
        done = run_client(ed25519_keys, tmp_path, *connects(running))
    assert (done.returncode, done.stdout) == (0, PASSWORD), done.stderr.decode()
    lines = done.stderr.decode().splitlines()
    received = [i for i, line in enumerate(lines) if "; decrypting" in line]
    kept = [i for i, line in enumerate(lines) if "; 1 of 2" in line]
    assert (len(received), len(kept)) == (2, 1), lines
    assert received[1] < kept[0], lines


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def test_several_connects_run_a_share_worker_that_ends_with_the_client(
    ed25519_keys: OurKeys, tmp_path: Path
) -> None:
    """Two --connect to closed ports: mandos-client (client/launch.py) keeps retrying beside
    its share worker; a SIGTERM, once the client is under way, ends both, the worker reaped by
    the client."""
    connects = [f"--connect=127.0.0.1:{free_port()}" for _ in range(2)]
    argv = [CLIENT, *ed25519_keys.client_args(), *connects, "--interface=none",
            f"--network-hook-dir={tmp_path}", "--retry=1", "--debug"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    try:
        under_way = b""
        while b"Connecting to" not in under_way:  # its stop signals are handled by now
            line = proc.stderr.readline()
            assert line, "the client ended before connecting"
            under_way += line
        workers = children(proc.pid)
        assert len(workers) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert not Path(f"/proc/{workers[0]}").exists()


def imported(stderr: bytes) -> set[str]:
    """The modules -X importtime (PYTHONPROFILEIMPORTTIME) lists in ``stderr``."""
    return {ln.split(b"|")[-1].strip().decode() for ln in stderr.splitlines()
            if ln.startswith(b"import time")}  # fmt: skip


def test_all_up_takes_the_first_round_without_asyncio(
    ed25519_keys: OurKeys, sections: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every server behaves: client/main.py's first round, no event loop (its start-up)."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    with servers(*(conf(s) for s in sections), None) as running:
        done = run_client(ed25519_keys, tmp_path, *connects(running))
    assert (done.returncode, done.stdout) == (0, PASSWORD), done.stderr.decode()
    assert "asyncio" not in imported(done.stderr)


@contextlib.contextmanager
def hanging_up() -> Iterator[str]:
    """A server that accepts and at once hangs up (it "speaks" first, then fails); its address."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with contextlib.suppress(OSError):
            while True:
                listener.accept()[0].close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        listener.close()
        thread.join(10)


def test_a_failing_server_does_not_end_the_first_round(
    ed25519_keys: OurKeys, sections: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first server to answer hangs up: the other two still give their shares in the first
    round, without asyncio."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    with hanging_up() as bad, servers(conf(sections[0]), conf(sections[2])) as running:
        done = run_client(ed25519_keys, tmp_path, f"--connect={bad}", *connects(running))
    assert (done.returncode, done.stdout) == (0, PASSWORD), done.stderr.decode()
    assert f"{bad}: TLS handshake".encode() in done.stderr
    assert "asyncio" not in imported(done.stderr)


def test_several_connects_ask_for_a_plain_secret_once(
    ed25519_keys: OurKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both servers hold the password; only one finishes the handshake that asks for it."""
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    with servers(ed25519_keys.conf(), ed25519_keys.conf()) as running:
        done = run_client(ed25519_keys, tmp_path, *connects(running))
        assert (done.returncode, done.stdout) == (0, PASSWORD), done.stderr.decode()

        def sent() -> int:
            return sum(s.log_text().count("Sending secret") for s in running if s)

        wait_until(lambda: sent() >= 1)
        assert sent() == 1
    assert "asyncio" not in imported(done.stderr)


def test_one_stopped_unlocks(ed25519_keys: OurKeys, sections: list[str], tmp_path: Path) -> None:
    with servers(conf(sections[0]), None, conf(sections[2])) as running:
        done = run_client(ed25519_keys, tmp_path, *connects(running))
    assert (done.returncode, done.stdout) == (0, PASSWORD), done.stderr


def test_two_stopped_prints_nothing_and_keeps_retrying(
    ed25519_keys: OurKeys, sections: list[str], tmp_path: Path
) -> None:
    with servers(None, conf(sections[1]), None) as running:
        done = run_client(ed25519_keys, tmp_path, *connects(running), for_at_most=5)
    err = done.stderr.decode()
    assert (done.returncode, done.stdout) == (-15, b""), err
    assert "got share 2 of 3 (threshold 2)" in err
    assert "; 1 of 2" in err
    assert err.count("Connection refused") >= 4, err  # both stopped ones, again and again
    assert "Traceback" not in err


def test_disabled_on_two_gives_nothing(
    ed25519_keys: OurKeys, sections: list[str], tmp_path: Path
) -> None:
    off = [conf(s, enabled="False") for s in sections]
    with servers(off[0], conf(sections[1]), off[2]) as running:
        done = run_client(ed25519_keys, tmp_path, *connects(running), for_at_most=5)
        for server in (running[0], running[2]):
            assert server is not None
            server.wait_for_log("Client client1 is disabled")
    assert (done.returncode, done.stdout) == (-15, b""), done.stderr
    assert b"the server sent nothing (refused)" in done.stderr


def test_a_share_from_an_older_rotation_is_never_combined(
    ed25519_keys: OurKeys, sections: list[str], tmp_path: Path
) -> None:
    old = make_share_sections(ed25519_keys, tmp_path / "old")
    with servers(conf(sections[0]), conf(old[1]), None) as running:
        done = run_client(ed25519_keys, tmp_path, *connects(running), for_at_most=5)
    err = done.stderr.decode()
    assert (done.returncode, done.stdout) == (-15, b""), err
    assert "shares of different sets are never combined" in err
    assert "completes the set" not in err


def test_one_connect_given_a_share_says_more_servers_are_needed(
    ed25519_keys: OurKeys, sections: list[str], tmp_path: Path
) -> None:
    with our_server(conf(sections[0])) as server:
        done = run_client(ed25519_keys, tmp_path, f"--connect={server.connect}", for_at_most=4)
    err = done.stderr.decode()
    assert (done.returncode, done.stdout) == (-15, b""), err
    assert err.count("sent a share: a threshold needs more servers (--connect)") == 1, err


def test_several_connects_race_without_zeroconf(ed25519_keys: OurKeys, tmp_path: Path) -> None:
    """Several --connect use the asyncio race, but never import zeroconf or ssl
    (architecture.md)."""
    code = "import sys; from mandos.client.main import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-X", "importtime", "-c", code, *ed25519_keys.client_args(),
            "--interface=none", f"--network-hook-dir={tmp_path}", "--retry=1",
            f"--connect=127.0.0.1:{free_port()}", f"--connect=127.0.0.1:{free_port()}"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=3)
    except subprocess.TimeoutExpired:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    imported = {ln.split(b"|")[-1].strip().decode() for ln in err.splitlines()
                if ln.startswith(b"import time")}  # fmt: skip
    assert {"asyncio", "mandos.client.race"} <= imported
    assert not {m for m in imported if m.split(".")[0] in {"zeroconf", "ifaddr"}}
    assert "_ssl" not in imported  # asyncio needs ssl only for its own TLS (client/main.py)
