"""Socket activation: the server listens on the socket systemd passes (LISTEN_FDS), or on
``--socket FD``, and keeps it from its checkers (close-on-exec, as Mandos 1.8.18 does)."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from mandos.adapters.socket_activation import activation_socket, passed_socket_count
from mandos.core.errors import ConfigError
from tests.ports import free_port
from tests.server.conftest import TLSKey, client_section, fetch

SECRET = b"\x85\x01\x02 not really OpenPGP, the server never looks"
O_CLOEXEC = 0o2000000


def test_passed_sockets_are_counted_for_our_pid_only() -> None:
    env = {"LISTEN_PID": "42", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "mandos.socket", "X": "y"}
    assert passed_socket_count(env, 42) == 1
    assert env == {"X": "y"}  # unset: children must not take them for their own
    assert passed_socket_count({"LISTEN_PID": "41", "LISTEN_FDS": "1"}, 42) == 0
    assert passed_socket_count({"LISTEN_FDS": "1"}, 42) == 0
    assert activation_socket({}, 42) is None
    assert activation_socket({"LISTEN_PID": "42", "LISTEN_FDS": "1"}, 42) == 3
    assert activation_socket({"LISTEN_PID": "42", "LISTEN_FDS": "0"}, 42) is None


@pytest.mark.parametrize(
    ("count", "message"),
    [
        ("2", "systemd passed 2 sockets (LISTEN_FDS); mandos listens on one"),
        ("x", "LISTEN_FDS: 'x' is not a number"),
        ("-1", "LISTEN_FDS: '-1' is not a number of sockets"),
    ],
)
def test_bad_listen_fds(count: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        activation_socket({"LISTEN_PID": "7", "LISTEN_FDS": count}, 7)


@contextlib.contextmanager
def server_dirs(key: TLSKey) -> Iterator[list[str]]:
    """Config and state directories; the server arguments that name them."""
    with tempfile.TemporaryDirectory(prefix="mandos-test-") as tmp:
        conf = Path(tmp, "conf")
        conf.mkdir()
        (conf / "clients.conf").write_text(client_section("c1", key, SECRET))
        (conf / "mandos.conf").write_text("[DEFAULT]\n")
        Path(tmp, "state").mkdir()
        yield [
            sys.executable, "-m", "mandos.server", "--foreground", "--debug", "--no-zeroconf",
            "--no-dbus", f"--configdir={conf}", f"--statedir={tmp}/state",
        ]  # fmt: skip


@contextlib.contextmanager
def started(argv: Sequence[str], **kw: object) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, **kw)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def fd_flags(pid: int, fd: int) -> int:
    for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8)
    raise AssertionError("no flags line")


def wait_listening_on(pid: int, fd: int) -> None:
    """Wait until the server has made ``fd`` its own (close-on-exec), then check it."""
    deadline = time.monotonic() + 20
    while not fd_flags(pid, fd) & O_CLOEXEC:
        assert time.monotonic() < deadline, "the listening socket stayed inheritable"
        time.sleep(0.05)


def test_systemd_socket_activate(tls_key: TLSKey) -> None:
    port = free_port("127.0.0.1")
    with server_dirs(tls_key) as argv:
        activate = ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", *argv]
        with started(activate) as proc:
            assert proc.stderr is not None
            deadline = time.monotonic() + 20
            while True:  # systemd-socket-activate binds, then starts the server on a connection
                with contextlib.suppress(ConnectionRefusedError):
                    socket.create_connection(("127.0.0.1", port), timeout=5).close()
                    break
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert fetch("127.0.0.1", port, tls_key) == SECRET
            wait_listening_on(proc.pid, 3)


def test_socket_fd_option(tls_key: TLSKey) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = listener.fileno()
    with (
        server_dirs(tls_key) as argv,
        listener,
        started([*argv, f"--socket={fd}"], pass_fds=(fd,)) as proc,
    ):
        assert fetch("127.0.0.1", port, tls_key) == SECRET
        wait_listening_on(proc.pid, fd)


def test_more_than_one_passed_socket_is_a_one_line_error(tls_key: TLSKey) -> None:
    with server_dirs(tls_key) as argv:
        code = (
            "import os, sys; os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='2');"
            "from mandos.server.main import main; sys.exit(main(sys.argv[1:]))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, *argv[3:]], capture_output=True, text=True, timeout=60
        )
    assert done.returncode != 0
    assert done.stderr == ("mandos: systemd passed 2 sockets (LISTEN_FDS); mandos listens on one\n")
