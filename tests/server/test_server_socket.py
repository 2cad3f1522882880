"""``--socket FD``: an inherited descriptor that is not a TCP listener is refused in one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from mandos.core.errors import EX_CONFIG
from tests.server.conftest import TLSKey, client_section, fetch

SECRET = b"inherited"


def _argv(tmp: Path, fd: int) -> list[str]:
    conf = tmp / "conf"
    conf.mkdir(exist_ok=True)
    return [sys.executable, "-m", "mandos.server", "--foreground", "--no-dbus", "--no-zeroconf",
            f"--socket={fd}", f"--configdir={conf}", f"--statedir={tmp / 'state'}"]  # fmt: skip


@contextmanager
def _pipe(_tmp: Path) -> Iterator[int]:
    r, w = os.pipe()
    try:
        yield r
    finally:
        os.close(r)
        os.close(w)


@contextmanager
def _unix_listener(tmp: Path) -> Iterator[int]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(tmp / "sock"))
        sock.listen()
        yield sock.fileno()


@contextmanager
def _udp(_tmp: Path) -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.fileno()


@contextmanager
def _closed(_tmp: Path) -> Iterator[int]:
    yield 250


@pytest.mark.parametrize(
    ("opener", "needle"),
    [
        (_pipe, "not a socket"),
        (_unix_listener, "not a TCP socket"),
        (_udp, "not a TCP socket"),
        (_closed, "not open"),
    ],
)
def test_non_tcp_descriptor_is_a_one_line_error(
    tmp_path: Path, opener: Callable[[Path], AbstractContextManager[int]], needle: str
) -> None:
    with opener(tmp_path) as fd:
        pass_fds = () if fd == 250 else (fd,)
        done = subprocess.run(
            _argv(tmp_path, fd), pass_fds=pass_fds, capture_output=True, text=True, timeout=30
        )
    assert done.returncode == EX_CONFIG, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("mandos:")]
    assert line.startswith("mandos: socket: ")
    assert needle in line


def test_inherited_tcp_listener_serves(tls_key: TLSKey, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        argv = _argv(tmp_path, sock.fileno())
        (tmp_path / "conf" / "clients.conf").write_text(client_section("c1", tls_key, SECRET))
        server = subprocess.Popen(argv, pass_fds=(sock.fileno(),), stderr=subprocess.DEVNULL)
        try:
            assert fetch("127.0.0.1", port, tls_key) == SECRET
        finally:
            server.terminate()
            server.wait(20)
