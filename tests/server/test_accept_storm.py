"""AcceptLoop in-process: at most MAX_HANDSHAKES unfinished handshakes; silent peers are shed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import pytest

from mandos.adapters.gnutls import RawKeyCredentials, generate_ed25519_keypair
from mandos.client.session import Timeouts, fetch_encrypted_secret
from mandos.core.config import DEFAULT_PRIORITY
from mandos.server import accept
from mandos.server.accept import AcceptLoop
from tests.server.inprocess import loopback_listener, one_client_world

SECRET = b"served past silent peers"


async def test_handshakes_are_capped_and_silent_peers_shed(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accept, "MAX_HANDSHAKES", 2)
    monkeypatch.setattr(accept, "SLOT_PATIENCE_SECONDS", 0.5)
    caplog.set_level(logging.INFO, logger="mandos")
    private, public = generate_ed25519_keypair()
    world = one_client_world(public, SECRET, handshake_timeout=60)
    with loopback_listener() as listener, RawKeyCredentials.from_pem(public, private) as cred:
        address = listener.getsockname()
        loop = AcceptLoop(listener, world.handler)
        serving = asyncio.create_task(loop.run())
        silent: list[socket.socket] = []
        try:
            for _ in range(3):  # peers that connect and never say a word
                sock = socket.socket()
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.connect(address)
                silent.append(sock)
            await asyncio.sleep(0.2)
            assert len(loop._unfinished) == 2  # the third waits in the listen queue
            async with asyncio.timeout(20):
                secret = await fetch_encrypted_secret(
                    socket.AF_INET, address, DEFAULT_PRIORITY, cred, Timeouts(receive=15)
                )
        finally:
            for sock in silent:
                sock.close()
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
    assert secret == SECRET
    assert any(
        "no handshake finished for 0.5 s; shedding" in r.getMessage() for r in caplog.records
    )


async def test_a_connection_shed_before_its_task_ran_is_closed(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Queued connections are accepted in one go, each task started but not yet run: past the
    # connection limit, the first is shed before it ran, and its socket is closed all the same.
    monkeypatch.setattr(accept, "connection_limit", lambda: 1)
    caplog.set_level(logging.WARNING, logger="mandos")
    _, public = generate_ed25519_keypair()
    world = one_client_world(public, SECRET, handshake_timeout=60)
    with loopback_listener() as listener:
        peers = [socket.create_connection(listener.getsockname()) for _ in range(2)]
        loop = AcceptLoop(listener, world.handler)
        serving = asyncio.create_task(loop.run())
        try:
            peers[0].settimeout(0)
            async with asyncio.timeout(10):
                while True:  # until the server has closed the first peer's connection
                    with contextlib.suppress(BlockingIOError):
                        if peers[0].recv(1) == b"":
                            break
                    await asyncio.sleep(0.01)
        finally:
            for peer in peers:
                peer.close()
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
    assert any("1 connections at once; shedding" in r.getMessage() for r in caplog.records)


async def test_queued_connections_are_taken_without_a_wait_each() -> None:
    _, public = generate_ed25519_keypair()
    world = one_client_world(public, SECRET, handshake_timeout=60)
    event_loop = asyncio.get_running_loop()
    waits: list[object] = []
    sock_accept = event_loop.sock_accept

    async def counting(sock: socket.socket) -> tuple[socket.socket, object]:
        waits.append(sock)
        return await sock_accept(sock)

    with loopback_listener() as listener:
        peers = [socket.create_connection(listener.getsockname()) for _ in range(3)]
        loop = AcceptLoop(listener, world.handler)
        event_loop.sock_accept = counting  # type: ignore[method-assign]
        serving = asyncio.create_task(loop.run())
        try:
            await asyncio.sleep(0.2)
            assert len(loop._unfinished) == 3  # silent peers: all before their handshake
            assert len(waits) == 1  # only once the queue was empty
        finally:
            del event_loop.sock_accept
            for peer in peers:
                peer.close()
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
