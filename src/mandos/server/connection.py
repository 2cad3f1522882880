"""One client connection: version line, TLS handshake, registry decision, secret, bye.

Bounds that the reference lacks (REFERENCE A19.10): the version line and the TLS handshake must
finish within ``handshake_timeout``; reads are bounded; while a client waits for approval, the
wait ends as soon as the peer goes away; sending the secret and saying goodbye are bounded too.

Each phase logs its own failures, so a line says where the exchange broke: before the
handshake ended ("Handshake failed", "timed out before the handshake finished"), or while the
secret was being sent ("did not read its secret", "Sending the secret to ... failed").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import Any, assert_never

from mandos.adapters.audit_log import AuditError
from mandos.adapters.gnutls.session import Session
from mandos.adapters.tls_stream import TLSStream
from mandos.core.errors import MandosError, RemoteProtocolError, TLSError
from mandos.core.handshake import NEED_DATA, VersionLine, VersionOK
from mandos.core.registry import AwaitApproval, Refuse, Registry, RequestHandle, SendSecret
from mandos.core.values import KeyId
from mandos.server.effects import EffectRunner
from mandos.server.observer import Observer, RequestTrace

log = logging.getLogger(__name__)

MAX_VERSION_READ = 64
SEND_TIMEOUT_SECONDS = 30.0
BYE_TIMEOUT_SECONDS = 5.0


def peer_name(address: Any) -> str:
    """The peer's address as logged: ``fe80::2%eth0`` for a link-local IPv6 peer."""
    host = str(address[0])
    if len(address) == 4 and address[3] and "%" not in host:
        try:
            return f"{host}%{socket.if_indextoname(address[3])}"
        except OSError:
            return f"{host}%{address[3]}"
    return host


class ConnectionHandler:
    """Serves one accepted socket from start to close; never raises."""

    def __init__(
        self,
        registry: Registry,
        effects: EffectRunner,
        *,
        priority: str,
        handshake_timeout: float,
        executor: Executor | None = None,
        now: Callable[[], datetime],
        send_timeout: float = SEND_TIMEOUT_SECONDS,
        observer: Observer | None = None,
    ) -> None:
        self._registry = registry
        self._effects = effects
        self._priority = priority
        self._handshake_timeout = handshake_timeout
        self._executor = executor
        self._send_timeout = send_timeout
        self._now = now
        self._observer = observer or Observer(now, lambda: registry)

    async def serve(
        self, sock: socket.socket, peer: str, on_handshake: Callable[[], None] = lambda: None
    ) -> None:
        """Run the whole exchange on ``sock`` and close it; log one line for any failure.

        ``sock`` is a connected, non-blocking stream socket; for TCP the caller has set
        TCP_NODELAY (tls_stream's rule 4).

        ``on_handshake`` is called once the TLS handshake is done (the connection is no
        longer one that may be shed when descriptors run out).
        """
        stream: TLSStream | None = None
        trace = self._observer.trace(peer)
        try:
            stream, key_id = await self._handshake(sock, peer, trace)
            if stream is None or key_id is None:
                return
            on_handshake()
            trace.identified(key_id)
            await self._serve_request(stream, key_id, peer, trace)
        finally:
            if stream is not None:
                stream.close()
            sock.close()
            trace.finish()

    async def _handshake(
        self, sock: socket.socket, peer: str, trace: RequestTrace
    ) -> tuple[TLSStream | None, KeyId | None]:
        """Version line and TLS handshake within the time limit; the peer's key ID if done."""
        stream: TLSStream | None = None
        try:
            async with asyncio.timeout(self._handshake_timeout):
                await self._read_version_line(sock)
                if _peer_closed(sock):
                    trace.failed("handshake_failed")
                    log.info("Connection from %s closed before the TLS handshake", peer)
                    return None, None
                session = Session.mandos_server(sock.fileno(), self._priority)
                stream = TLSStream(session, sock, executor=self._executor)
                await stream.handshake()
                return stream, stream.peer_key_id()
        except TimeoutError:
            trace.failed("timed_out")
            log.info("Connection from %s timed out before the handshake finished", peer)
        except RemoteProtocolError as exc:
            trace.failed("handshake_failed")
            log.info("%s (from %s)", exc, peer)
        except TLSError as exc:
            trace.failed("handshake_failed")
            log.info("Handshake failed with %s: %s", peer, exc)
        except MandosError as exc:
            log.warning("Connection from %s failed: %s", peer, exc)
        except OSError as exc:
            log.info("Connection from %s lost: %s", peer, exc.strerror or exc)
        return stream, None

    async def _read_version_line(self, sock: socket.socket) -> None:
        """Feed the core's parser until it accepts the line (it judges an early close too)."""
        loop = asyncio.get_running_loop()
        parser = VersionLine()
        while parser.next_event() is NEED_DATA:
            parser.receive_data(await loop.sock_recv(sock, MAX_VERSION_READ))
        assert isinstance(parser.next_event(), VersionOK)

    async def _serve_request(
        self, stream: TLSStream, key_id: KeyId, peer: str, trace: RequestTrace
    ) -> None:
        """Ask the registry, wait for approval if told to, send the secret or refuse."""
        handle, decision, effects = self._registry.begin_request(key_id, peer, self._now())
        wake = self._decided(decision, trace)
        await self._effects.apply(effects)
        sent, say_bye = False, True
        if handle is not None:
            try:
                sent, say_bye = await self._follow(stream, handle, decision, wake, peer, trace)
            finally:
                await self._effects.apply(self._registry.end_request(handle, self._now(), sent))
        if say_bye:
            await self._bye(stream)

    async def _follow(
        self,
        stream: TLSStream,
        handle: RequestHandle,
        decision: SendSecret | AwaitApproval | Refuse,
        wake: asyncio.Event | None,
        peer: str,
        trace: RequestTrace,
    ) -> tuple[bool, bool]:
        """Act on decisions until one is final: (secret sent, peer still there for a bye).

        ``wake`` is the approval event of an AwaitApproval decision (see _decided).
        """
        while True:
            match decision:
                case SendSecret(name=name, secret=secret):
                    try:
                        await trace.before_secret()  # its audit record is on disk first
                    except AuditError as exc:
                        log.error("Not sending the secret to %s (%s): %s", name, peer, exc)
                        return False, True  # a plain refusal for the client: it tries again
                    sent = await self._send_secret(stream, name, secret.reveal(), peer)
                    if sent:
                        trace.sent()
                    else:
                        trace.failed("failed")
                    return sent, sent
                case AwaitApproval(name=name, until=until):
                    assert wake is not None
                    if await self._wait_for_approval(stream, wake, until):
                        trace.failed("abandoned")
                        log.info("Client %s went away while waiting for approval", name)
                        return False, False
                case Refuse():
                    return False, True
                case _:
                    assert_never(decision)
            decision, effects = self._registry.poll_request(handle, self._now())
            wake = self._decided(decision, trace)
            await self._effects.apply(effects)

    async def _send_secret(self, stream: TLSStream, name: str, data: bytes, peer: str) -> bool:
        """Send within the send limit; a failure is logged as one, never as a handshake."""
        try:
            await stream.sendall(data, self._send_timeout)
        except TimeoutError:
            log.warning(
                "Client %s (%s) did not read its secret within %g s; dropped",
                name, peer, self._send_timeout,
            )  # fmt: skip
        except (TLSError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else exc
            log.warning("Sending the secret to %s (%s) failed: %s", name, peer, reason)
        else:
            return True
        return False

    async def _bye(self, stream: TLSStream) -> None:
        with contextlib.suppress(TimeoutError, TLSError, OSError):
            async with asyncio.timeout(BYE_TIMEOUT_SECONDS):
                await stream.bye()

    def _decided(
        self, decision: SendSecret | AwaitApproval | Refuse, trace: RequestTrace
    ) -> asyncio.Event | None:
        """Note ``decision``; for AwaitApproval, the event its wait will wait on.

        The event is made before the effects that announce the wait (NeedApproval, the
        ApprovalPending change) are carried out: an Approve() handled while they run, should
        one of them ever await, then wakes this wait instead of finding no event to set.
        """
        trace.decided(decision)
        if isinstance(decision, AwaitApproval):
            return self._effects.approval_event(decision.name)
        return None

    async def _wait_for_approval(
        self, stream: TLSStream, wake: asyncio.Event, until: datetime
    ) -> bool:
        """Wait until ``wake`` is set, until ``until``, or until the peer closes; True if it
        closed."""
        loop = asyncio.get_running_loop()
        # The core's deadline is wall-clock time; the loop's clock is monotonic.
        deadline = loop.time() + max(0.0, (until - self._now()).total_seconds())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline), asyncio.TaskGroup() as tg:
                peer_gone = tg.create_task(stream.wait_peer_closed())
                woken = tg.create_task(wake.wait())
                await asyncio.wait((peer_gone, woken), return_when=asyncio.FIRST_COMPLETED)
                gone = peer_gone.done()
                woken.cancel()
                peer_gone.cancel()
            return gone
        return False


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the peer has closed (or reset) its end: nothing but its end is left to read.

    In a storm a connection may wait in the listen queue longer than the client waits for the
    handshake (mandos-client: 10 s), and the client has gone when the server takes it. Seen
    here, such a connection costs no TLS session (a key share to make, a ClientHello to send),
    so the queue drains fast to the clients still waiting (bench/server_storm.py, N = 10,000).
    """
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
