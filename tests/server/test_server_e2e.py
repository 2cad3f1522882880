"""Our server as a real process, fetched from with a real GnuTLS client-side session."""

from __future__ import annotations

import contextlib
import signal
import socket
import time

from mandos.adapters.gnutls.keys import generate_ed25519_keypair
from tests.server.conftest import TLSKey, client_section, fetch
from tests.server.ourserver import our_server

SECRET = b"\x85\x01\x02 not really OpenPGP, the server never looks"


def test_enabled_client_gets_its_secret(tls_key: TLSKey) -> None:
    with our_server(client_section("client1", tls_key, SECRET)) as server:
        assert fetch(server.host, server.port, tls_key) == SECRET
        server.wait_for_log("Sending secret to client1")


def test_handshakes_in_worker_threads(tls_key: TLSKey) -> None:
    conf = client_section("client1", tls_key, SECRET)
    with our_server(conf, extra_args=["--handshake-workers", "2"]) as server:
        for _ in range(3):
            assert fetch(server.host, server.port, tls_key) == SECRET


def test_ipv6_loopback(tls_key: TLSKey) -> None:
    with our_server(client_section("c6", tls_key, SECRET), host="::1") as server:
        assert fetch("::1", server.port, tls_key) == SECRET


def test_unknown_client_gets_nothing(tls_key: TLSKey) -> None:
    other = TLSKey(*generate_ed25519_keypair())
    with our_server(client_section("client1", other, SECRET)) as server:
        assert fetch(server.host, server.port, tls_key) is None
        server.wait_for_log(f"Client not found for key ID: {tls_key.key_id}")


def test_disabled_client_gets_nothing(tls_key: TLSKey) -> None:
    conf = client_section("client1", tls_key, SECRET, enabled="False")
    with our_server(conf) as server:
        assert fetch(server.host, server.port, tls_key) is None


def test_garbage_version_line_is_logged_and_server_keeps_serving(tls_key: TLSKey) -> None:
    with our_server(client_section("client1", tls_key, SECRET)) as server:
        for garbage in (b"hello\r\n", b"2\r\n", b"x" * 5000):
            with socket.create_connection((server.host, server.port), timeout=10) as s:
                s.sendall(garbage)
                s.settimeout(10)
                # Closed with our bytes unread, the kernel may answer with a reset.
                with contextlib.suppress(ConnectionResetError):
                    assert s.recv(100) == b""
        log = server.wait_for_log("longer than")
        assert "Unknown protocol version: 'hello'" in log
        assert "Unknown protocol version: '2'" in log
        assert fetch(server.host, server.port, tls_key) == SECRET


def test_sigterm_exits_cleanly_and_saves_state(tls_key: TLSKey) -> None:
    with our_server(client_section("client1", tls_key, SECRET)) as server:
        time.sleep(0.2)
        server.signal(signal.SIGTERM)
        assert server.process.wait(20) == 0
        assert (server.statedir / "clients.json").exists()
