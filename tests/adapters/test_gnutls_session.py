"""Real GnuTLS sessions in both Mandos roles: over a socketpair, and against gnutls-serv/-cli."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import select
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mandos.adapters.gnutls import (
    RawKeyCredentials,
    Session,
    _ffi,
    generate_ed25519_keypair,
    public_key_id,
)
from mandos.adapters.gnutls import session as session_module
from mandos.core.config import DEFAULT_PRIORITY
from mandos.core.errors import HandshakeError, KeyFileError, TLSError
from tests.netns import connect_in_namespace, loopback_namespace, requires_netns

Step = Callable[[], bool]


@pytest.fixture(scope="module")
def keypair() -> tuple[bytes, bytes]:
    return generate_ed25519_keypair()


@pytest.fixture
def credentials(keypair: tuple[bytes, bytes]) -> Iterator[RawKeyCredentials]:
    with RawKeyCredentials.from_pem(keypair[1], keypair[0]) as cred:
        yield cred


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    with a, b:
        yield a, b


def _drive(*steps: Step, rounds: int = 10_000) -> None:
    """Call each step until all have returned True once (both ends in one thread)."""
    pending = list(steps)
    for _ in range(rounds):
        pending = [step for step in pending if not step()]
        if not pending:
            return
    pytest.fail("sessions made no progress")


def _then(*steps: Step) -> Step:
    """One step that runs the given steps in order, each until it returns True."""
    remaining = list(steps)

    def step() -> bool:
        while remaining and remaining[0]():
            remaining.pop(0)
        return not remaining

    return step


def _wait(session: Session, sock: socket.socket) -> None:
    """Block (in a test only) until sock is ready in the direction the session wants."""
    if session.wants_write():
        select.select([], [sock], [], 30)
    else:
        select.select([sock], [], [], 30)


def _run(session: Session, sock: socket.socket, step: Step) -> None:
    """Drive one session against an external peer, blocking in select between steps."""
    deadline = time.monotonic() + 60
    while not step():
        assert time.monotonic() < deadline, "peer made no progress"
        _wait(session, sock)


class _Reader:
    """A step that collects what a session receives until EOF."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.received: list[bytes] = []

    def __call__(self) -> bool:
        data = self.session.recv(4096)
        if data is None:
            return False
        self.received.append(data)
        return data == b""

    @property
    def data(self) -> bytes:
        return b"".join(self.received)


@pytest.fixture
def pair(
    sockets: tuple[socket.socket, socket.socket], credentials: RawKeyCredentials
) -> Iterator[tuple[Session, Session]]:
    server = Session.mandos_server(sockets[0].fileno(), DEFAULT_PRIORITY)
    client = Session.mandos_client(sockets[1].fileno(), DEFAULT_PRIORITY, credentials)
    with server, client:
        yield server, client


def test_handshake_gives_the_client_key_id(
    pair: tuple[Session, Session], keypair: tuple[bytes, bytes]
) -> None:
    server, client = pair
    _drive(server.handshake, client.handshake)
    assert server.peer_key_id() == public_key_id(keypair[1])
    assert server.protocol_name() == client.protocol_name() == "TLS1.3"
    assert server.cipher_name() == "AES-256-GCM"


def test_payload_then_bye_is_eof_on_the_other_side(pair: tuple[Session, Session]) -> None:
    server, client = pair
    _drive(server.handshake, client.handshake)
    payload = bytes(range(256)) * 4
    assert server.send(payload) == len(payload)
    reader = _Reader(client)
    _drive(server.bye, _then(reader, client.bye))
    assert reader.data == payload


def test_client_can_close_first(pair: tuple[Session, Session]) -> None:
    server, client = pair
    _drive(server.handshake, client.handshake)
    reader = _Reader(server)
    _drive(client.bye, _then(reader, server.bye))
    assert reader.received == [b""]


def test_tcp_close_without_close_notify_is_an_error(
    sockets: tuple[socket.socket, socket.socket], pair: tuple[Session, Session]
) -> None:
    server, client = pair
    _drive(server.handshake, client.handshake)
    sockets[1].shutdown(socket.SHUT_RDWR)
    with pytest.raises(TLSError) as info:
        _drive(lambda: server.recv(100) is not None)
    assert info.value.name == "GNUTLS_E_PREMATURE_TERMINATION"


def test_bad_priority_is_a_tls_error(sockets: tuple[socket.socket, socket.socket]) -> None:
    with pytest.raises(TLSError, match="priority string"):
        Session.mandos_server(sockets[0].fileno(), "NORMAL:+NO-SUCH-THING")


def test_close_is_idempotent_and_final(pair: tuple[Session, Session]) -> None:
    server, _ = pair
    server.close()
    server.close()
    assert server.closed
    with pytest.raises(TLSError):
        server.handshake()


def test_credentials_outlive_close_while_a_session_uses_them(
    sockets: tuple[socket.socket, socket.socket], keypair: tuple[bytes, bytes]
) -> None:
    cred = RawKeyCredentials.from_pem(keypair[1], keypair[0])
    with Session.mandos_server(sockets[0].fileno(), DEFAULT_PRIORITY) as server:
        client = Session.mandos_client(sockets[1].fileno(), DEFAULT_PRIORITY, cred)
        cred.close()  # deferred: the client session still needs them
        with pytest.raises(TLSError):
            Session.mandos_client(sockets[1].fileno(), DEFAULT_PRIORITY, cred)
        _drive(server.handshake, client.handshake)
        client.close()
    cred.close()


def test_debug_log_goes_to_logging(
    pair: tuple[Session, Session], caplog: pytest.LogCaptureFixture
) -> None:
    server, client = pair
    caplog.set_level(logging.DEBUG, logger="mandos.gnutls")
    _ffi.set_debug_level(3)
    try:
        _drive(server.handshake, client.handshake)
    finally:
        _ffi.set_debug_level(0)
    assert any(r.getMessage().startswith("GnuTLS: ") for r in caplog.records)


def test_credentials_reject_mismatched_halves(keypair: tuple[bytes, bytes]) -> None:
    other_private, _ = generate_ed25519_keypair()
    with pytest.raises(KeyFileError, match="public key and private key do not belong together"):
        RawKeyCredentials.from_pem(keypair[1], other_private)
    with pytest.raises(KeyFileError):
        RawKeyCredentials.from_pem(b"junk", keypair[0])


def test_credentials_errors_name_the_file_once(keypair: tuple[bytes, bytes]) -> None:
    names = ("/k/tls-pubkey.pem", "/k/tls-privkey.pem")
    bad_private = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    with pytest.raises(KeyFileError) as caught:
        RawKeyCredentials.from_pem(keypair[1], bad_private, names)
    assert str(caught.value).startswith("/k/tls-privkey.pem: cannot be read: ")
    assert str(caught.value).count("tls-") == 1
    assert caught.value.__cause__ is not None  # GnuTLS's error, translated here and only here
    with pytest.raises(KeyFileError, match=r"^/k/tls-pubkey\.pem: no PEM data found$"):
        RawKeyCredentials.from_pem(b"junk", keypair[0], names)
    other_private, _ = generate_ed25519_keypair()
    with pytest.raises(KeyFileError) as caught:
        RawKeyCredentials.from_pem(keypair[1], other_private, names)
    assert str(caught.value) == f"{names[0]} and {names[1]} do not belong together"
    RawKeyCredentials.from_pem(keypair[1], keypair[0], names).close()


def test_dh_options_are_accepted(
    sockets: tuple[socket.socket, socket.socket], keypair: tuple[bytes, bytes]
) -> None:
    params = subprocess.run(
        ["certtool", "--get-dh-params", "--sec-param=high"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with RawKeyCredentials.from_pem(keypair[1], keypair[0]) as cred:
        cred.set_dh_bits(3072)
        cred.set_dh_params_pem(params)
        cred.set_dh_params_pem(params)
        with pytest.raises(KeyFileError):
            cred.set_dh_params_pem(b"-----BEGIN DH PARAMETERS-----\nAA==\n")
        with (
            Session.mandos_server(sockets[0].fileno(), DEFAULT_PRIORITY) as server,
            Session.mandos_client(sockets[1].fileno(), DEFAULT_PRIORITY, cred) as client,
        ):
            _drive(server.handshake, client.handshake)


@pytest.mark.parametrize("role", ["server", "client"])
def test_garbage_instead_of_a_handshake_is_a_tls_error(
    sockets: tuple[socket.socket, socket.socket], credentials: RawKeyCredentials, role: str
) -> None:
    if role == "server":
        session = Session.mandos_server(sockets[0].fileno(), DEFAULT_PRIORITY)
    else:
        session = Session.mandos_client(sockets[0].fileno(), DEFAULT_PRIORITY, credentials)
    sockets[1].send(b"HTTP/1.0 400 Bad Request\r\n\r\n" * 10)
    with session, pytest.raises(TLSError):
        _drive(session.handshake)


# --- an X.509 peer instead of a raw public key -------------------------------------------


@pytest.fixture(scope="module")
def x509_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("x509")
    key, cert, template = tmp / "key.pem", tmp / "cert.pem", tmp / "cert.cfg"
    template.write_text('cn = "mandos test"\nexpiration_days = 2\ntls_www_server\nsigning_key\n')
    for args in (
        ["--generate-privkey", "--key-type=ecdsa", "--outfile", str(key)],
        [
            *("--generate-self-signed", "--load-privkey", str(key)),
            *("--template", str(template), "--outfile", str(cert)),
        ],
    ):
        subprocess.run(["certtool", *args], capture_output=True, check=True, timeout=60)
    return cert, key


@pytest.fixture
def x509_client(
    sockets: tuple[socket.socket, socket.socket], x509_files: tuple[Path, Path]
) -> Iterator[Session]:
    """A TLS server on sockets[1] presenting an X.509 certificate (test-only credentials)."""
    set_key_file = _ffi.lib.gnutls_certificate_set_x509_key_file
    set_key_file.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int)
    set_key_file.restype = ctypes.c_int
    cred = ctypes.c_void_p()
    _ffi.gnutls_certificate_allocate_credentials(ctypes.byref(cred))
    with RawKeyCredentials(cred) as x509_cred:  # the class frees any certificate credentials
        cert, key = (str(p).encode() for p in x509_files)
        assert set_key_file(cred, cert, key, _ffi.X509_FMT_PEM) >= 0
        flags = _ffi.SERVER | _ffi.NONBLOCK | _ffi.ENABLE_RAWPK
        with Session(flags, sockets[1].fileno(), "NORMAL", x509_cred) as session:
            yield session


@pytest.mark.parametrize("priority", ["", "NORMAL:+CTYPE-RAWPK"])  # "" means NORMAL
def test_x509_peer_is_a_bad_certificate(
    sockets: tuple[socket.socket, socket.socket], x509_client: Session, priority: str
) -> None:
    with Session.mandos_server(sockets[0].fileno(), priority) as server:
        _drive(server.handshake, x509_client.handshake)
        with pytest.raises(HandshakeError, match="Bad certificate"):
            server.peer_key_id()


def test_x509_only_peer_fails_the_mandos_handshake(
    sockets: tuple[socket.socket, socket.socket], x509_client: Session
) -> None:
    with (
        Session.mandos_server(sockets[0].fileno(), DEFAULT_PRIORITY) as server,
        pytest.raises(HandshakeError),
    ):
        _drive(server.handshake, x509_client.handshake)


# --- interop with gnutls-bin ---------------------------------------------------------------


@contextlib.contextmanager
def _reaped(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


@requires_netns
def test_mandos_server_role_against_gnutls_serv(
    tmp_path: Path, keypair: tuple[bytes, bytes]
) -> None:
    (tmp_path / "priv.pem").write_bytes(keypair[0])
    (tmp_path / "pub.pem").write_bytes(keypair[1])
    # gnutls-serv has no bind option: it listens on every interface, so it runs in a namespace
    # of its own whose only interface is its loopback, and the connection is made there.
    with loopback_namespace() as ns:
        cmd = ["ip", "netns", "exec", ns, "gnutls-serv", "--echo", "--quiet", "-p", "5556"]
        cmd += ["--priority", DEFAULT_PRIORITY, "--rawpkkeyfile", str(tmp_path / "priv.pem")]
        cmd += ["--rawpkfile", str(tmp_path / "pub.pem")]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with _reaped(proc):
            sock = connect_in_namespace(ns, 5556)
            assert sock is not None, "gnutls-serv did not start"
            with sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setblocking(False)
                with Session.mandos_server(sock.fileno(), DEFAULT_PRIORITY) as session:
                    _run(session, sock, session.handshake)
                    assert session.peer_key_id() == public_key_id(keypair[1])
                    assert session.protocol_name() == "TLS1.3"
                    assert session.send(b"echo me\n") == 8
                    reply = _Reader(session)

                    def got_line(reply: _Reader = reply) -> bool:
                        return reply() or b"\n" in reply.data

                    _run(session, sock, got_line)
                    assert reply.data == b"echo me\n"
                    _run(session, sock, session.bye)


def test_mandos_client_role_against_gnutls_cli(credentials: RawKeyCredentials) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        cmd = ["gnutls-cli", "-p", str(port), "127.0.0.1", "--priority", DEFAULT_PRIORITY]
        cmd += ["--insecure"]
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        with _reaped(proc):
            listener.settimeout(30)
            sock, _ = listener.accept()
            with sock:
                sock.setblocking(False)
                with Session.mandos_client(sock.fileno(), DEFAULT_PRIORITY, credentials) as s:
                    _run(s, sock, s.handshake)
                    payload = b"0123456789abcdef" * 64 + b"\n"
                    assert s.send(payload) == len(payload)
                    _run(s, sock, s.bye)
            out, _ = proc.communicate(timeout=30)
    assert payload in out


def test_server_sessions_share_one_empty_credentials_set(
    sockets: tuple[socket.socket, socket.socket], credentials: RawKeyCredentials
) -> None:
    # Allocated once, not per connection; closing a session never frees it for the next one.
    first = Session.mandos_server(sockets[0].fileno(), DEFAULT_PRIORITY)
    first.close()
    server = Session.mandos_server(sockets[0].fileno(), DEFAULT_PRIORITY)
    client = Session.mandos_client(sockets[1].fileno(), DEFAULT_PRIORITY, credentials)
    with server, client:
        _drive(server.handshake, client.handshake)
    assert session_module._no_certificate() is session_module._no_certificate()
    assert session_module._NO_CERTIFICATE[0]._users == 0  # both sessions gave it back


def test_the_shared_empty_credentials_are_never_freed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Kept for the process's life: freed by their __del__ at exit, they could find _ffi gone
    # (seen as "Exception ignored in RawKeyCredentials.__del__" at the end of a test run).
    freed: list[object] = []
    monkeypatch.setattr(_ffi, "gnutls_certificate_free_credentials", freed.append)
    session_module._no_certificate()._finalizer()
    assert freed == []
