"""Hostile or broken peers: each is logged in one line, and the server keeps serving others."""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import time
from pathlib import Path

from mandos.adapters.gnutls import _ffi
from mandos.adapters.gnutls.session import RawKeyCredentials, Session
from tests.server.conftest import TLSKey, client_section, fetch
from tests.server.ourserver import RunningServer, our_server

SECRET = b"opaque secret"


def _raw_connection(server: RunningServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=15)


def _closed_by_server(sock: socket.socket) -> bool:
    with contextlib.suppress(ConnectionResetError):
        return sock.recv(4096) == b"" or _closed_by_server(sock)
    return True


def _log_lines_with(server: RunningServer, needle: str) -> list[str]:
    return [line for line in server.log_text().splitlines() if needle in line]


def test_random_bytes_instead_of_a_tls_handshake(tls_key: TLSKey) -> None:
    with our_server(client_section("c1", tls_key, SECRET)) as server:
        with _raw_connection(server) as sock:
            sock.sendall(b"1\r\n")
            sock.recv(4096)  # our ClientHello
            sock.sendall(os.urandom(2000))
            assert _closed_by_server(sock)
        server.wait_for_log("Handshake failed")
        assert len(_log_lines_with(server, "Handshake failed")) == 1
        assert fetch(server.host, server.port, tls_key) == SECRET


def test_silent_client_is_closed_after_the_handshake_timeout(tls_key: TLSKey) -> None:
    conf = client_section("c1", tls_key, SECRET)
    with our_server(conf, extra_args=["--handshake-timeout=PT1S"]) as server:
        with _raw_connection(server) as silent, _raw_connection(server) as half:
            half.sendall(b"1\r\n")  # version line, then nothing: the TLS handshake stalls
            started = time.monotonic()
            assert _closed_by_server(silent)
            assert _closed_by_server(half)
            assert time.monotonic() - started < 10
            # Meanwhile the server served somebody else.
            assert fetch(server.host, server.port, tls_key) == SECRET
        server.wait_for_log("timed out before the handshake finished")
        assert len(_log_lines_with(server, "timed out before the handshake finished")) == 2


def test_default_handshake_timeout_is_bounded(tls_key: TLSKey) -> None:
    with (
        our_server(client_section("c1", tls_key, SECRET)) as server,
        _raw_connection(server) as silent,
    ):
        started = time.monotonic()
        assert _closed_by_server(silent)
        assert 5 < time.monotonic() - started < 14  # the default is 10 s


def _x509_files(tmp: Path) -> tuple[Path, Path]:
    key, cert, template = tmp / "key.pem", tmp / "cert.pem", tmp / "cert.cfg"
    template.write_text('cn = "mandos test"\nexpiration_days = 2\ntls_www_server\nsigning_key\n')
    certtool = ["certtool", "--generate-privkey", "--key-type=ecdsa", "--outfile", str(key)]
    subprocess.run(certtool, capture_output=True, check=True, timeout=60)
    selfsign = ["certtool", "--generate-self-signed", "--load-privkey", str(key)]
    selfsign += ["--template", str(template), "--outfile", str(cert)]
    subprocess.run(selfsign, capture_output=True, check=True, timeout=60)
    return cert, key


def _x509_session(fd: int, cert: Path, key: Path) -> Session:
    """A TLS server session presenting an X.509 certificate instead of a raw public key."""
    set_key_file = _ffi.lib.gnutls_certificate_set_x509_key_file
    set_key_file.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int)
    set_key_file.restype = ctypes.c_int
    cred = ctypes.c_void_p()
    _ffi.gnutls_certificate_allocate_credentials(ctypes.byref(cred))
    credentials = RawKeyCredentials(cred)
    assert set_key_file(cred, str(cert).encode(), str(key).encode(), _ffi.X509_FMT_PEM) >= 0
    flags = _ffi.SERVER | _ffi.NONBLOCK | _ffi.ENABLE_RAWPK
    return Session(flags, fd, "NORMAL", credentials)


def test_x509_certificate_instead_of_a_raw_public_key(tls_key: TLSKey, tmp_path: Path) -> None:
    cert, key = _x509_files(tmp_path)
    with our_server(client_section("c1", tls_key, SECRET)) as server:
        with _raw_connection(server) as sock:
            sock.sendall(b"1\r\n")
            sock.setblocking(False)
            with _x509_session(sock.fileno(), cert, key) as session:
                deadline = time.monotonic() + 15
                with contextlib.suppress(Exception):
                    while not session.handshake() and time.monotonic() < deadline:
                        time.sleep(0.01)
        server.wait_for_log("Handshake failed")
        assert fetch(server.host, server.port, tls_key) == SECRET
        assert "Sending secret to c1" in server.log_text()


def test_idle_peers_past_ulimit_are_shed_and_logged_once(tls_key: TLSKey) -> None:
    """ulimit -n 64 and 100 silent peers: the real client is served, the state is saved, and
    one line tells of it (never "Too many open files" ten times a second)."""
    conf = client_section("c1", tls_key, SECRET)
    with (
        our_server(conf, extra_args=["--handshake-timeout=PT60S"], max_open_files=64) as server,
        contextlib.ExitStack() as idle,
    ):
        for _ in range(100):
            idle.enter_context(_raw_connection(server))
        time.sleep(1)
        assert fetch(server.host, server.port, tls_key) == SECRET
        time.sleep(2)  # the save after the request (at most one a second)
        assert len(_log_lines_with(server, "shedding the oldest connections")) == 1
        assert _log_lines_with(server, "Too many open files") == []
        assert _log_lines_with(server, "cannot write state") == []
        assert server.process.poll() is None
