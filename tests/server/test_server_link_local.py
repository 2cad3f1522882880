"""A link-local peer is logged with its interface (``fe80::b%mnd0``), in two namespaces."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.netns import IFNAME, requires_netns, run_in_ns, stop, veth_pair_namespaces

pytestmark = [pytest.mark.netns, requires_netns]

PORT = 4711  # inside a fresh namespace: nothing else listens there


def test_link_local_peer_is_logged_with_its_interface(tmp_path: Path) -> None:
    (tmp_path / "clients.conf").write_text("")
    (tmp_path / "mandos.conf").write_text("[DEFAULT]\n")
    log = tmp_path / "server.log"
    argv = [sys.executable, "-m", "mandos.server", "--foreground", "--debug", "--no-dbus",
            "--no-zeroconf", f"--port={PORT}", f"--configdir={tmp_path}",
            f"--statedir={tmp_path / 'state'}"]  # fmt: skip
    target = f"('fe80::a%{IFNAME}', {PORT})"
    peer = f"import socket; s = socket.create_connection({target}, timeout=10)"
    peer += "; s.sendall(b'9\\r\\n'); s.recv(1)"
    with veth_pair_namespaces("mll", ipv4=False) as (a, b):
        with log.open("wb") as out:
            server = run_in_ns(a, argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 30
            while "Listening on port" not in log.read_text():
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            client = run_in_ns(b, [sys.executable, "-c", peer], stdin=subprocess.DEVNULL)
            assert stop(client, timeout=20) == 0
            while "Unknown protocol version" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        finally:
            server.terminate()
            stop(server, timeout=20)
    assert f"(from {b.ll6}%{IFNAME})" in log.read_text()
