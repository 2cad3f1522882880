"""The server's connection path in-process: a registry with one client, its effect runner and a
ConnectionHandler, as the accept loop would build them (shared by tests/server and tests/fuzz)."""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from mandos.adapters.checkers import CheckerRunner
from mandos.adapters.gnutls.keys import public_key_id
from mandos.core.config import DEFAULT_PRIORITY, ClientConfig
from mandos.core.registry import Registry
from mandos.core.values import ClientName, Secret
from mandos.server.connection import ConnectionHandler
from mandos.server.effects import EffectRunner


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class World:
    """A registry with client ``c1``, the effect runner and the handler under test."""

    registry: Registry
    effects: EffectRunner
    handler: ConnectionHandler

    async def approve(self, approved: bool) -> None:
        """What a D-Bus ``Approve`` call does to the running server."""
        await self.effects.apply(self.registry.approve("c1", approved, utc_now()))


def one_client_world(
    public_pem: bytes,
    secret: bytes,
    *,
    handshake_timeout: float = 5,
    send_timeout: float = 30,
    **options: object,
) -> World:
    """Client ``c1`` holds the key ``public_pem`` and gets ``secret``; ``options`` are its
    other ClientConfig settings."""
    config = ClientConfig(
        name=ClientName("c1"),
        secret=Secret(secret),
        key_id=public_key_id(public_pem),
        **options,  # type: ignore[arg-type]
    )
    registry = Registry([config], utc_now(), random.Random(1))
    effects = EffectRunner(CheckerRunner(lambda *_: None), lambda: None, lambda: None)
    handler = ConnectionHandler(
        registry,
        effects,
        priority=DEFAULT_PRIORITY,
        handshake_timeout=handshake_timeout,
        now=utc_now,
        send_timeout=send_timeout,
    )
    return World(registry, effects, handler)


@contextlib.contextmanager
def loopback_listener() -> Iterator[socket.socket]:
    """A non-blocking TCP listener on 127.0.0.1 (a free port), closed at the end."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(256)
        listener.setblocking(False)
        yield listener
