"""Shared pieces of the wire targets: a handler with one client, and a real peer's first flight."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass

from mandos.adapters.gnutls import RawKeyCredentials, Session, generate_ed25519_keypair
from mandos.adapters.tls_stream import TLSStream
from mandos.core.config import DEFAULT_PRIORITY
from mandos.core.registry import Registry
from mandos.server.connection import ConnectionHandler
from tests.server.inprocess import one_client_world

SECRET = b"\x85 fuzz secret, never to be seen by a mutated peer"
KEYPAIR = generate_ed25519_keypair()
HANDSHAKE_TIMEOUT = 2.0


@dataclass
class Outcome:
    """What one exchange did: the bytes the server sent and what it logged."""

    sent: bytes
    messages: list[str]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def make_handler() -> tuple[ConnectionHandler, Registry]:
    """A handler whose registry knows the KEYPAIR client (so a good peer gets SECRET)."""
    world = one_client_world(KEYPAIR[1], SECRET, handshake_timeout=HANDSHAKE_TIMEOUT)
    return world.handler, world.registry


async def _drain(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset, when it left our bytes unread)."""
    loop = asyncio.get_running_loop()
    parts = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := await loop.sock_recv(sock, 65536):
            parts.append(chunk)
    return b"".join(parts)


async def exchange(handler: ConnectionHandler, data: bytes) -> Outcome:
    """Send ``data`` to the real server path, close our side, and collect what came back."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    collect = _Collect()
    logger = logging.getLogger("mandos")
    logger.addHandler(collect)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with theirs:
            loop = asyncio.get_running_loop()
            serving = asyncio.create_task(handler.serve(ours, "192.0.2.1"))
            with contextlib.suppress(OSError):  # the server closed early: fine for garbage
                await loop.sock_sendall(theirs, data)
                theirs.shutdown(socket.SHUT_WR)
            async with asyncio.timeout(HANDSHAKE_TIMEOUT + 10):
                sent, _ = await asyncio.gather(_drain(theirs), serving)
    finally:
        logger.removeHandler(collect)
        logger.setLevel(old_level)
    return Outcome(sent, [r.getMessage() for r in collect.records])


async def real_first_flight() -> bytes:
    """The bytes a real Mandos client (GnuTLS, TLS server role) sends in answer to our hello."""
    srv_a, srv_b = socket.socketpair()
    cli_a, cli_b = socket.socketpair()
    for s in (srv_a, srv_b, cli_a, cli_b):
        s.setblocking(False)
    loop = asyncio.get_running_loop()
    recorded = bytearray()

    async def relay(src: socket.socket, dst: socket.socket, record: bool) -> None:
        while chunk := await loop.sock_recv(src, 65536):
            if record:
                recorded.extend(chunk)
            await loop.sock_sendall(dst, chunk)

    with RawKeyCredentials.from_pem(KEYPAIR[1], KEYPAIR[0]) as cred:
        server = TLSStream(Session.mandos_server(srv_a.fileno(), DEFAULT_PRIORITY), srv_a)
        client = TLSStream(Session.mandos_client(cli_b.fileno(), DEFAULT_PRIORITY, cred), cli_b)
        relays = [
            asyncio.create_task(relay(srv_b, cli_a, record=False)),
            asyncio.create_task(relay(cli_a, srv_b, record=True)),
        ]
        try:
            async with asyncio.timeout(20):
                await asyncio.gather(server.handshake(), client.handshake())
        finally:
            for task in relays:
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)
            server.close()
            client.close()
            srv_b.close()
            cli_a.close()
    return bytes(recorded)
