"""The two fetch twins (blocking attempt.py for --connect, asyncio session.py for discovery) fail
alike: each failure is translated once, by ``attempt.failing_as``, into the same message.

Real peers on loopback: a real GnuTLS Mandos-server role (tests/client/peer.py), a port with no
listener, and a listener that never speaks.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from mandos.adapters.gnutls.session import RawKeyCredentials
from mandos.client.attempt import Timeouts, fetch_blocking, spoken
from mandos.client.session import fetch_encrypted_secret
from mandos.core.config import DEFAULT_PRIORITY
from mandos.core.errors import AttemptFailed
from tests.client.conftest import KeySet
from tests.client.peer import MandosPeer, Reply
from tests.ports import free_port

QUICK = Timeouts(connect=2.0, handshake=0.5, receive=None, bye=2.0)


@pytest.fixture(scope="module")
def credentials(keyset: KeySet) -> Iterator[RawKeyCredentials]:
    with RawKeyCredentials.from_pem(
        keyset.tls_pubkey.read_bytes(), keyset.tls_privkey.read_bytes()
    ) as cred:
        yield cred


async def _both_fail(port: int, credentials: RawKeyCredentials, limit: int) -> tuple[str, str]:
    """The messages of the blocking and the asyncio fetch from 127.0.0.1:port, in that order."""
    address = ("127.0.0.1", port)

    def blocking() -> bytes:
        return fetch_blocking(socket.AF_INET, address, DEFAULT_PRIORITY, credentials, QUICK, limit)

    with pytest.raises(AttemptFailed) as sync_caught:
        await asyncio.to_thread(blocking)
    with pytest.raises(AttemptFailed) as async_caught:
        await fetch_encrypted_secret(
            socket.AF_INET, address, DEFAULT_PRIORITY, credentials, QUICK, limit
        )
    return str(sync_caught.value), str(async_caught.value)


@pytest.mark.parametrize(
    ("reply", "limit", "expected"),
    [
        (Reply("silent"), 1000, "TLS handshake: no answer within 0.5 seconds"),
        (Reply("close"), 1000, "TLS handshake: "),
        (Reply("raw", b"HTTP/1.0 400 Bad Request\r\n\r\n" * 4), 1000, "TLS handshake: "),
        (Reply("secret", b""), 1000, "the server sent nothing (refused)"),
        (Reply("secret", b"x" * 64), 10, "receive: Peer sent more than 10 bytes"),
    ],
    ids=["silent", "close", "not-tls", "refused", "too-much"],
)
async def test_twins_fail_with_the_same_message(
    credentials: RawKeyCredentials, reply: Reply, limit: int, expected: str
) -> None:
    async with MandosPeer([reply]) as peer:
        sync_text, async_text = await _both_fail(peer.port, credentials, limit)
    assert sync_text == async_text
    assert sync_text.startswith(expected), sync_text
    assert "\n" not in sync_text


async def test_no_listener_is_connect_refused(credentials: RawKeyCredentials) -> None:
    sync_text, async_text = await _both_fail(free_port(), credentials, 1000)
    assert sync_text == async_text == "connect: Connection refused"


async def test_refused_is_marked(credentials: RawKeyCredentials) -> None:
    async with MandosPeer([Reply("secret", b"")]) as peer:
        with pytest.raises(AttemptFailed) as caught:
            await fetch_encrypted_secret(
                socket.AF_INET, ("127.0.0.1", peer.port), DEFAULT_PRIORITY, credentials, QUICK
            )
    assert caught.value.refused


async def test_a_secret_arrives_through_both(credentials: RawKeyCredentials) -> None:
    async with MandosPeer([Reply("secret", b"sealed")]) as peer:
        address = ("127.0.0.1", peer.port)
        got = await asyncio.to_thread(
            fetch_blocking, socket.AF_INET, address, DEFAULT_PRIORITY, credentials, QUICK
        )
        assert got == b"sealed"
        got = await fetch_encrypted_secret(
            socket.AF_INET, address, DEFAULT_PRIORITY, credentials, QUICK
        )
        assert got == b"sealed"


def test_spoken_yields_servers_as_they_speak_and_leaves_out_silent_and_absent_ones() -> None:
    """attempt.spoken (mandos-client's first round): two listeners speak at once, one accepts
    and stays silent, one port has no listener. The caller takes longer than ``until`` with the
    first: the second, which spoke meanwhile, still comes; the silent one never does."""
    speakers = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    silent = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    first_taken = threading.Event()

    def speak() -> None:
        for listener in speakers:
            conn = listener.accept()[0]
            accepted.append(conn)
            assert conn.recv(3) == b"1\r\n"  # the version line, in one piece
        accepted[0].sendall(b"hello")
        first_taken.wait(5)
        accepted[1].sendall(b"hello")  # while the caller is busy with the first

    thread = threading.Thread(target=speak, daemon=True)
    thread.start()
    try:
        ports = [s.getsockname()[1] for s in (*speakers, silent)] + [free_port()]
        targets = [(socket.AF_INET, ("127.0.0.1", port)) for port in ports]
        until = time.monotonic() + 2
        got = []
        for index, sock in spoken(targets, until):
            got.append(index)
            first_taken.set()
            thread.join(5)  # both have spoken; now dawdle past until
            time.sleep(max(0.0, until - time.monotonic()) + 0.1)
            assert sock.recv(5) == b"hello"
            sock.close()
        assert got == [0, 1]
    finally:
        for s in (*speakers, silent, *accepted):
            s.close()
