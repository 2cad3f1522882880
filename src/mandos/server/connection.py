"""One client connection: version line, TLS handshake, registry decision, secret, bye.

Bounds that the reference lacks (REFERENCE A19.10): the version line and the TLS handshake must
finish within ``handshake_timeout``; reads are bounded; while a client waits for approval, the
wait ends as soon as the peer goes away; sending the secret and saying goodbye are bounded too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from datetime import datetime
from typing import assert_never

from mandos.adapters.gnutls.session import Session
from mandos.adapters.tls_stream import TLSStream
from mandos.core.errors import MandosError, RemoteProtocolError, TLSError
from mandos.core.handshake import NEED_DATA, VersionLine, VersionOK
from mandos.core.registry import AwaitApproval, Refuse, Registry, SendSecret
from mandos.core.values import KeyId
from mandos.server.effects import EffectRunner

log = logging.getLogger(__name__)

MAX_VERSION_READ = 64
SEND_TIMEOUT_SECONDS = 30.0
BYE_TIMEOUT_SECONDS = 5.0


class ConnectionHandler:
    """Serves one accepted socket from start to close; never raises."""

    def __init__(
        self,
        registry: Registry,
        effects: EffectRunner,
        *,
        priority: str,
        handshake_timeout: float,
        now: Callable[[], datetime],
    ) -> None:
        self._registry = registry
        self._effects = effects
        self._priority = priority
        self._handshake_timeout = handshake_timeout
        self._now = now

    async def serve(self, sock: socket.socket, peer: str) -> None:
        """Run the whole exchange on ``sock`` and close it; log one line for any failure."""
        stream: TLSStream | None = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            async with asyncio.timeout(self._handshake_timeout):
                await self._read_version_line(sock)
                session = Session.mandos_server(sock.fileno(), self._priority)
                stream = TLSStream(session, sock)
                await stream.handshake()
                key_id = session.peer_key_id()
            await self._serve_request(stream, session, key_id, peer)
        except TimeoutError:
            log.info("Connection from %s timed out before the handshake finished", peer)
        except RemoteProtocolError as exc:
            log.info("%s (from %s)", exc, peer)
        except TLSError as exc:
            log.info("Handshake failed with %s: %s", peer, exc)
        except MandosError as exc:
            log.warning("Connection from %s failed: %s", peer, exc)
        except OSError as exc:
            log.info("Connection from %s lost: %s", peer, exc.strerror or exc)
        finally:
            if stream is not None:
                stream.close()
            sock.close()

    async def _read_version_line(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        parser = VersionLine()
        while True:
            event = parser.next_event()
            if isinstance(event, VersionOK):
                return
            assert event is NEED_DATA
            chunk = await loop.sock_recv(sock, MAX_VERSION_READ)
            if not chunk:
                raise RemoteProtocolError("Connection closed before the protocol version line")
            parser.receive_data(chunk)

    async def _serve_request(
        self, stream: TLSStream, session: Session, key_id: KeyId, peer: str
    ) -> None:
        handle, decision, effects = self._registry.begin_request(key_id, peer, self._now())
        await self._effects.apply(effects)
        sent = False
        try:
            while True:
                match decision:
                    case SendSecret(name=name, secret=secret):
                        async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                            await stream.sendall(secret.reveal())
                        sent = True
                        break
                    case AwaitApproval(name=name, until=until):
                        gone = await self._wait_for_approval(stream, session, name, until)
                        if gone:
                            log.info("Client %s went away while waiting for approval", name)
                            return
                    case Refuse():
                        break
                    case _:
                        assert_never(decision)
                assert handle is not None
                decision, effects = self._registry.poll_request(handle, self._now())
                await self._effects.apply(effects)
        finally:
            if handle is not None:
                await self._effects.apply(self._registry.end_request(handle, self._now(), sent))
        with contextlib.suppress(TimeoutError, TLSError, OSError):
            async with asyncio.timeout(BYE_TIMEOUT_SECONDS):
                await stream.bye()

    async def _wait_for_approval(
        self, stream: TLSStream, session: Session, name: str, until: datetime
    ) -> bool:
        """Wait until woken, until ``until``, or until the peer closes; True if it closed."""
        wake = self._effects.approval_event(name)
        delay = max(0.0, (until - self._now()).total_seconds())
        peer_gone = asyncio.ensure_future(stream.wait_peer_closed())
        woken = asyncio.ensure_future(wake.wait())
        try:
            done, _ = await asyncio.wait(
                {peer_gone, woken}, timeout=delay, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (peer_gone, woken):
                task.cancel()
            await asyncio.gather(peer_gone, woken, return_exceptions=True)
        return peer_gone in done and not peer_gone.cancelled() and peer_gone.exception() is None
