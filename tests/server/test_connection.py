"""ConnectionHandler and EffectRunner in-process: a real GnuTLS client over a socketpair.

The handler serves one end of a socketpair; the other end is a real Mandos client session
(TLS server role, raw public key) driven by TLSStream, so every phase (version line,
handshake, approval wait, sending the secret) runs for real, without a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mandos.adapters.checkers import CheckerRunner
from mandos.adapters.gnutls import RawKeyCredentials, Session, generate_ed25519_keypair
from mandos.adapters.tls_stream import TLSStream
from mandos.core.config import DEFAULT_PRIORITY
from mandos.core.effects import (
    Effect,
    Log,
    PropertiesChanged,
    SaveState,
    Signal,
    StartChecker,
    StopChecker,
    WakeApprovalWaiters,
)
from mandos.core.errors import TLSError
from mandos.server.connection import peer_name
from mandos.server.effects import EffectRunner
from tests.server.inprocess import World, one_client_world, utc_now

SECRET = b"\x85 the encrypted secret"
PEER = "192.0.2.7"


@pytest.fixture(scope="module")
def keypair() -> tuple[bytes, bytes]:
    return generate_ed25519_keypair()


def _world(keypair: tuple[bytes, bytes], *, secret: bytes = SECRET, **options: Any) -> World:
    return one_client_world(keypair[1], secret, **options)


@contextlib.asynccontextmanager
async def _client(keypair: tuple[bytes, bytes], sock: socket.socket) -> AsyncIterator[TLSStream]:
    """A Mandos client's TLS session (the TLS server side) on ``sock``, after the version line."""
    await asyncio.get_running_loop().sock_sendall(sock, b"1\r\n")
    with RawKeyCredentials.from_pem(keypair[1], keypair[0]) as credentials:
        stream = TLSStream(
            Session.mandos_client(sock.fileno(), DEFAULT_PRIORITY, credentials), sock
        )
        try:
            yield stream
        finally:
            stream.close()


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


async def _fetch(keypair: tuple[bytes, bytes], sock: socket.socket) -> bytes:
    async with _client(keypair, sock) as stream:
        await stream.handshake()
        data = await stream.recv_until_eof(1 << 20)
        with contextlib.suppress(TLSError, OSError):
            await stream.bye()
        return data


async def _approval_pending(world: World) -> None:
    """Wait until the handler has asked the registry and waits for approval."""
    async with asyncio.timeout(10):
        while not world.registry.snapshot("c1")["ApprovalPending"]:  # noqa: ASYNC110 - core state, no event to wait on
            await asyncio.sleep(0.01)


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


async def test_secret_is_sent(
    keypair: tuple[bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mandos")
    world = _world(keypair)
    ours, theirs = _pair()
    _, received = await asyncio.gather(world.handler.serve(ours, PEER), _fetch(keypair, theirs))
    assert received == SECRET
    assert "Sending secret to c1" in _messages(caplog)
    assert ours.fileno() == -1  # closed by the handler


async def test_unknown_key_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mandos")
    world = _world(generate_ed25519_keypair())
    ours, theirs = _pair()
    stranger = generate_ed25519_keypair()
    _, received = await asyncio.gather(world.handler.serve(ours, PEER), _fetch(stranger, theirs))
    assert received == b""
    assert any("Client not found" in m for m in _messages(caplog))


async def test_approval_then_secret(keypair: tuple[bytes, bytes]) -> None:
    world = _world(keypair, approved_by_default=False, approval_delay=timedelta(seconds=30))
    ours, theirs = _pair()
    serving = asyncio.create_task(world.handler.serve(ours, PEER))
    fetching = asyncio.create_task(_fetch(keypair, theirs))
    await _approval_pending(world)
    await world.approve(True)
    assert await fetching == SECRET
    await serving
    assert not world.registry.snapshot("c1")["ApprovalPending"]


async def test_client_went_away_while_waiting_for_approval(
    keypair: tuple[bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mandos")
    world = _world(keypair, approved_by_default=False, approval_delay=timedelta(seconds=30))
    ours, theirs = _pair()
    serving = asyncio.create_task(world.handler.serve(ours, PEER))
    async with _client(keypair, theirs) as stream:
        await stream.handshake()
        await _approval_pending(world)
    # The client closed: the wait ends at once, not after the 30 s approval delay.
    async with asyncio.timeout(5):
        await serving
    assert "Client c1 went away while waiting for approval" in _messages(caplog)
    assert not world.registry.snapshot("c1")["ApprovalPending"]
    assert "Sending secret to c1" not in _messages(caplog)


async def test_an_approval_while_the_wait_is_announced_wakes_the_wait(
    keypair: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The approval event exists before the effects that announce the wait are carried out.

    An Approve() handled while they run (here: right after them, before the handler's next
    step) must wake the wait, not find no event and leave the client for the approval delay.
    """
    world = _world(keypair, approved_by_default=False, approval_delay=timedelta(seconds=30))
    apply = world.effects.apply

    async def apply_then_approve(effects: Iterable[Effect]) -> None:
        effects = list(effects)
        await apply(effects)
        if any(isinstance(e, Signal) and e.member == "NeedApproval" for e in effects):
            await apply(world.registry.approve("c1", True, utc_now()))

    monkeypatch.setattr(world.effects, "apply", apply_then_approve)
    ours, theirs = _pair()
    async with asyncio.timeout(5):  # not the 30 s approval delay
        _, received = await asyncio.gather(world.handler.serve(ours, PEER), _fetch(keypair, theirs))
    assert received == SECRET


async def test_denied_after_the_approval_delay(keypair: tuple[bytes, bytes]) -> None:
    world = _world(keypair, approved_by_default=False, approval_delay=timedelta(seconds=0.3))
    ours, theirs = _pair()
    _, received = await asyncio.gather(world.handler.serve(ours, PEER), _fetch(keypair, theirs))
    assert received == b""


async def test_peer_that_never_reads_the_secret_is_dropped_and_logged_as_such(
    keypair: tuple[bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mandos")
    world = _world(keypair, secret=bytes(4 << 20), send_timeout=0.5)
    ours, theirs = _pair()
    serving = asyncio.create_task(world.handler.serve(ours, PEER))
    async with _client(keypair, theirs) as stream:
        await stream.handshake()
        async with asyncio.timeout(10):
            await serving  # the client reads nothing
    messages = _messages(caplog)
    assert any("did not read its secret within 0.5 s" in m for m in messages), messages
    assert not any("before the handshake" in m for m in messages)
    assert "Sending secret to c1" not in messages


async def test_tls_error_while_sending_is_not_a_handshake_failure(
    keypair: tuple[bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mandos")
    world = _world(keypair, secret=bytes(4 << 20))
    ours, theirs = _pair()
    serving = asyncio.create_task(world.handler.serve(ours, PEER))
    async with _client(keypair, theirs) as stream:
        await stream.handshake()
        await asyncio.sleep(0.2)  # the server is stuck sending: socket buffers are full
    async with asyncio.timeout(10):
        await serving
    messages = _messages(caplog)
    assert any(m.startswith("Sending the secret to c1") for m in messages), messages
    assert not any("Handshake failed" in m for m in messages)


async def test_close_before_the_version_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mandos")
    world = _world(generate_ed25519_keypair())
    ours, theirs = _pair()
    theirs.close()
    await world.handler.serve(ours, PEER)
    assert f"Connection closed before the protocol version line (from {PEER})" in _messages(caplog)


async def test_peer_gone_after_the_version_line_costs_no_tls_session(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="mandos")
    world = _world(generate_ed25519_keypair())
    sessions: list[int] = []
    monkeypatch.setattr(Session, "mandos_server", lambda fd, _: sessions.append(fd))
    ours, theirs = _pair()
    theirs.sendall(b"1\r\n")
    theirs.close()  # as a mandos-client whose handshake limit passed in the listen queue
    await world.handler.serve(ours, PEER)
    assert f"Connection from {PEER} closed before the TLS handshake" in _messages(caplog)
    assert sessions == []


def test_link_local_peer_is_named_with_its_interface() -> None:
    lo = socket.if_nametoindex("lo")
    assert peer_name(("fe80::2", 1, 0, lo)) == "fe80::2%lo"
    assert peer_name(("fe80::2%lo", 1, 0, lo)) == "fe80::2%lo"
    assert peer_name(("2001:db8::1", 1, 0, 0)) == "2001:db8::1"
    assert peer_name(("192.0.2.1", 1)) == "192.0.2.1"


# -- EffectRunner --------------------------------------------------------------------------------


@dataclass
class Sink:
    """Records what a D-Bus adapter would be asked to emit."""

    seen: list[object] = field(default_factory=list)

    def signal(self, effect: Signal) -> None:
        self.seen.append(effect)

    def properties_changed(self, effect: PropertiesChanged) -> None:
        self.seen.append(effect)


async def test_effect_runner_carries_out_each_kind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mandos")
    exits: list[tuple[str, int | None, int | None]] = []
    done = asyncio.Event()

    def exited(name: str, code: int | None, signum: int | None) -> None:
        exits.append((name, code, signum))
        done.set()

    checkers = CheckerRunner(exited)
    saves: list[int] = []
    wakes: list[int] = []
    sink = Sink()
    runner = EffectRunner(checkers, lambda: saves.append(1), lambda: wakes.append(1), [sink])
    waiter = runner.approval_event("c1")
    marker = tmp_path / "ran"
    signal = Signal("c1", "CheckerStarted", (f"touch {marker}",))
    changed = PropertiesChanged("c1", {"Enabled": True})
    await runner.apply(
        [
            StartChecker("c1", f"touch {marker}"),
            Log(logging.INFO, "hello %s", ("c1",)),
            SaveState(),
            WakeApprovalWaiters("c1"),
            signal,
            changed,
        ]
    )
    async with asyncio.timeout(10):
        await done.wait()
    assert exits == [("c1", 0, None)]
    assert marker.exists()
    assert "hello c1" in _messages(caplog)
    assert saves == [1]
    assert wakes == [1]
    assert waiter.is_set()
    assert runner.approval_event("c1") is not waiter  # a fresh event for the next wait
    assert sink.seen == [signal, changed]
    await runner.apply([StartChecker("c2", "sleep 30"), StopChecker("c2")])
    assert not checkers.is_running("c2")
    await checkers.aclose()
