"""sd_notify: under systemd (NOTIFY_SOCKET set) the server reports READY=1 and STOPPING=1."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.server.conftest import TLSKey, client_section
from tests.server.ourserver import our_server


def test_ready_and_stopping_are_sent_to_notify_socket(tls_key: TLSKey, tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(30)
        conf = client_section("c1", tls_key, b"x")
        with our_server(conf, env={"NOTIFY_SOCKET": str(path)}) as server:
            ready = sock.recv(4096).decode()
            assert "READY=1" in ready.split("\n")
            assert server.stop() == 0
        assert "STOPPING=1" in sock.recv(4096).decode().split("\n")
