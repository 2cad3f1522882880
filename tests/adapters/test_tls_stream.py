"""TLSStream: both Mandos roles under one asyncio loop over a socketpair, real libgnutls."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mandos.adapters.gnutls import (
    RawKeyCredentials,
    Session,
    generate_ed25519_keypair,
    public_key_id,
)
from mandos.adapters.tls_stream import TLSStream
from mandos.core.config import DEFAULT_PRIORITY
from mandos.core.errors import RemoteProtocolError, TLSError

Pair = tuple[TLSStream, TLSStream]


@pytest.fixture(scope="module")
def keypair() -> tuple[bytes, bytes]:
    return generate_ed25519_keypair()


@pytest.fixture
async def pair(keypair: tuple[bytes, bytes]) -> AsyncIterator[Pair]:
    a, b = socket.socketpair()
    with RawKeyCredentials.from_pem(keypair[1], keypair[0]) as cred:
        server = TLSStream(Session.mandos_server(a.fileno(), DEFAULT_PRIORITY), a)
        client = TLSStream(Session.mandos_client(b.fileno(), DEFAULT_PRIORITY, cred), b)
        try:
            yield server, client
        finally:
            server.close()
            client.close()


def _registered(fd: int) -> bool:
    """Whether the running loop still watches this descriptor (removing it if so)."""
    loop = asyncio.get_running_loop()
    return loop.remove_reader(fd) | loop.remove_writer(fd)


def _watched(stream: TLSStream) -> bool:
    """Whether the stream keeps its reader registered."""
    return stream._reading is not None


def _closed_unwatched(*streams: TLSStream) -> bool:
    """Close the streams: True if the loop then watches none of their descriptors."""
    fds = [stream._fd for stream in streams]
    for stream in streams:
        stream.close()
    return not any(_registered(fd) for fd in fds)


async def test_handshake_and_key_id(pair: Pair, keypair: tuple[bytes, bytes]) -> None:
    server, client = pair
    await asyncio.gather(server.handshake(), client.handshake())
    assert server.peer_key_id() == public_key_id(keypair[1])
    assert server.session.protocol_name() == "TLS1.3"


async def test_large_payload_then_bye(pair: Pair) -> None:
    server, client = pair
    payload = bytes(range(256)) * 4096  # 1 MiB: more than the socket buffers hold

    async def send_side() -> None:
        await server.handshake()
        await server.sendall(payload)
        await server.bye()

    async def receive_side() -> bytes:
        await client.handshake()
        data = await client.recv_until_eof(limit=len(payload))
        await client.bye()
        return data

    _, received = await asyncio.gather(send_side(), receive_side())
    assert received == payload


async def test_sendall_waits_at_most_its_limit(pair: Pair) -> None:
    server, client = pair
    await asyncio.gather(server.handshake(), client.handshake())
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError):  # the client reads nothing: the buffers fill up
        await server.sendall(bytes(4 << 20), limit=0.2)
    assert 0.2 <= loop.time() - began < 10


async def test_sendall_that_never_waits_sets_no_timer(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, client = pair
    await asyncio.gather(server.handshake(), client.handshake())
    scopes: list[object] = []
    timeout_at = asyncio.timeout_at

    def counting(when: float | None) -> asyncio.Timeout:
        scopes.append(when)
        return timeout_at(when)

    monkeypatch.setattr(asyncio, "timeout_at", counting)
    await server.sendall(b"a secret", limit=30)
    assert scopes == []
    assert await client.recv() == b"a secret"


async def test_small_secret_like_the_mandos_exchange(pair: Pair) -> None:
    server, client = pair
    secret = b"\x85" + bytes(1023)

    async def send_side() -> None:
        await server.handshake()
        await server.sendall(secret)
        await server.bye()

    async def receive_side() -> bytes:
        await client.handshake()
        data = await client.recv_until_eof(limit=65536)
        await client.bye()
        return data

    _, received = await asyncio.gather(send_side(), receive_side())
    assert received == secret


async def test_more_than_the_limit_is_a_protocol_error(pair: Pair) -> None:
    server, client = pair
    await asyncio.gather(server.handshake(), client.handshake())

    async def send_side() -> None:
        await server.sendall(b"x" * 5000)
        await server.bye()

    sender = asyncio.create_task(send_side())
    with pytest.raises(RemoteProtocolError, match="more than 4096 bytes"):
        await client.recv_until_eof(limit=4096)
    client.close()
    with contextlib.suppress(TLSError, OSError):  # the peer is gone: either outcome is fine
        await sender


async def test_recv_returns_empty_at_close_notify(pair: Pair) -> None:
    server, client = pair
    await asyncio.gather(server.handshake(), client.handshake())

    async def server_side() -> bytes:
        data = await server.recv()
        await server.bye()
        return data

    _, received = await asyncio.gather(client.bye(), server_side())
    assert received == b""


async def test_wait_peer_closed(pair: Pair) -> None:
    server, client = pair
    await asyncio.gather(server.handshake(), client.handshake())
    waiter = asyncio.create_task(server.wait_peer_closed())
    await asyncio.sleep(0)
    assert not waiter.done()
    client.close()
    await asyncio.wait_for(waiter, timeout=30)


async def test_cancelled_handshake_carries_on_and_close_leaves_nothing_registered(
    pair: Pair,
) -> None:
    server, client = pair
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await server.handshake()  # the client is not running: it must wait
    # The same session can carry on once the peer runs.
    await asyncio.gather(server.handshake(), client.handshake())
    assert _closed_unwatched(server, client)


async def test_a_connection_registers_its_reader_once(pair: Pair) -> None:
    loop = asyncio.get_running_loop()
    added: list[int] = []
    add_reader = loop.add_reader

    def counting(fd: Any, callback: Any, *args: Any) -> None:
        added.append(fd)
        add_reader(fd, callback, *args)

    loop.add_reader = counting  # type: ignore[method-assign,assignment]
    try:
        server, client = pair

        async def server_side() -> None:  # as connection.py does
            await server.handshake()
            await server.sendall(b"secret")
            await server.bye()

        async def client_side() -> bytes:  # as client/session.py does
            await client.handshake()
            data = await client.recv_until_eof(100)
            await client.bye()
            return data

        _, data = await asyncio.gather(server_side(), client_side())
        assert data == b"secret"
    finally:
        del loop.add_reader
    # Each side waited to read several times (hello, the secret, close_notify).
    assert sorted(added) == sorted({server._fd, client._fd})
    assert _closed_unwatched(server, client)


async def test_readable_with_nothing_waiting_stops_the_watch(pair: Pair) -> None:
    server, client = pair
    await asyncio.gather(server.handshake(), client.handshake())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await server.recv()  # the client sends nothing yet
    assert _watched(server)  # still, after the wait
    await client.sendall(b"unasked")
    for _ in range(3):
        await asyncio.sleep(0)  # the loop sees it readable: once, not on every turn
    assert not _watched(server)
    assert not _registered(server._fd)
    assert await server.recv() == b"unasked"


async def test_cancelled_recv_can_be_retried(pair: Pair) -> None:
    server, client = pair
    await asyncio.gather(server.handshake(), client.handshake())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await client.recv()
    await server.sendall(b"later")
    assert await client.recv() == b"later"
    assert _closed_unwatched(server, client)


async def test_close_is_idempotent(pair: Pair) -> None:
    server, _ = pair
    server.close()
    server.close()
    assert server.session.closed
    with pytest.raises(TLSError):
        await server.handshake()


class _CountingPool(ThreadPoolExecutor):
    """Counts the steps it runs, and the threads they ran in."""

    def __init__(self) -> None:
        super().__init__(2)
        self.threads: set[int] = set()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        def run() -> Any:
            self.threads.add(threading.get_ident())
            return fn(*args, **kwargs)

        return super().submit(run)


async def test_handshake_in_a_worker_thread(keypair: tuple[bytes, bytes]) -> None:
    a, b = socket.socketpair()
    with (
        _CountingPool() as pool,
        RawKeyCredentials.from_pem(keypair[1], keypair[0]) as cred,
    ):
        server = TLSStream(Session.mandos_server(a.fileno(), DEFAULT_PRIORITY), a, executor=pool)
        client = TLSStream(Session.mandos_client(b.fileno(), DEFAULT_PRIORITY, cred), b)
        try:
            await asyncio.gather(server.handshake(), client.handshake())
            assert server.peer_key_id() == public_key_id(keypair[1])
            await client.sendall(b"secret")
            assert await server.recv() == b"secret"
            assert pool.threads
            assert threading.get_ident() not in pool.threads
        finally:
            server.close()
            client.close()


async def test_cancelled_worker_handshake_waits_for_its_step() -> None:
    a, b = socket.socketpair()
    with ThreadPoolExecutor(1) as pool:
        server = TLSStream(Session.mandos_server(a.fileno(), DEFAULT_PRIORITY), a, executor=pool)
        try:
            task = asyncio.ensure_future(server.handshake())
            await asyncio.sleep(0.05)  # the peer never speaks: waiting for its hello
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            assert _closed_unwatched(server)
            b.close()
