"""Ask the Mandos server(s) for this client's secret, with mandos-client's own parts.

One attempt per server per call (no retry loop here: ``rotate`` decides when to ask again),
over ``--connect`` addresses or the servers Zeroconf finds within a few seconds. The secret
is decrypted with the client's OpenPGP key; it is returned as a Secret and never printed.
What a server serves may be one share of a threshold secret: :func:`passphrases` combines
the shares the way mandos-client does (client/threshold.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mandos.adapters import openpgp
from mandos.adapters.gnutls.session import RawKeyCredentials
from mandos.client.args import DEFAULT_PRIORITY, ConnectTarget
from mandos.client.attempt import SockAddr, Timeouts, fetch_blocking
from mandos.client.threshold import Done, Judge
from mandos.core import shares
from mandos.core.errors import AttemptFailed, DecryptError, KeyFileError, MandosError, ShareError
from mandos.core.values import Secret

#: How long to listen for Zeroconf announcements when no --connect is given.
BROWSE_SECONDS: Final = 3.0
TIMEOUTS: Final = Timeouts(connect=5.0, handshake=10.0, receive=30.0, bye=2.0)


@dataclass(frozen=True, slots=True)
class Answer:
    """What one server gave: a decrypted secret, or the step that failed and why."""

    server: str
    secret: Secret | None = None
    failed: str = ""  # "fetch" or "decrypt"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Keys:
    """The client's TLS credentials and OpenPGP key pair (never printed)."""

    credentials: RawKeyCredentials
    pubkey: bytes
    seckey: bytes


def key_files(keydir: Path) -> Keys:
    """The client's four key files in KEYDIR, read and checked (KeyFileError otherwise)."""
    try:
        pub, sec, tls_pub, tls_priv = (
            (keydir / name).read_bytes()
            for name in ("pubkey.txt", "seckey.txt", "tls-pubkey.pem", "tls-privkey.pem")
        )
    except OSError as exc:
        raise KeyFileError(f"{exc.filename}: {exc.strerror}") from None
    try:
        credentials = RawKeyCredentials.from_pem(tls_pub, tls_priv)
    except MandosError as exc:
        raise KeyFileError(f"{keydir}: TLS key: {exc}") from None
    return Keys(credentials, pub, sec)


def _target(t: ConnectTarget) -> tuple[str, int, SockAddr]:
    if not t.ipv6:
        return f"{t.host}:{t.port}", socket.AF_INET, (t.host, t.port)
    scope = 0
    if t.scope is not None:
        with contextlib.suppress(OSError):
            scope = int(t.scope) if t.scope.isdigit() else socket.if_nametoindex(t.scope)
    return f"[{t.host}]:{t.port}", socket.AF_INET6, (t.host, t.port, 0, scope)


def _discover(seconds: float) -> list[tuple[str, int, SockAddr]]:
    import mandos.client.discovery as discovery  # zeroconf only when it is needed

    found: list[discovery.ServerAddress] = []

    async def listen() -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await discovery.browse(None, found.append)

    asyncio.run(listen())
    return [(str(a), a.family, discovery.connect_args(a)) for a in found]


def ask_servers(
    keys: Keys,
    targets: Sequence[ConnectTarget],
    *,
    browse_seconds: float = BROWSE_SECONDS,
    timeouts: Timeouts = TIMEOUTS,
) -> list[Answer]:
    """One answer per server: the --connect TARGETS, or those Zeroconf finds."""
    servers = [_target(t) for t in targets] if targets else _discover(browse_seconds)
    answers = []
    for label, family, sockaddr in servers:
        try:
            blob = fetch_blocking(family, sockaddr, DEFAULT_PRIORITY, keys.credentials, timeouts)
        except AttemptFailed as exc:
            answers.append(Answer(label, failed="fetch", reason=str(exc)))
            continue
        try:
            secret = Secret(openpgp.decrypt(blob, keys.seckey, keys.pubkey))
        except (DecryptError, MandosError) as exc:
            answers.append(Answer(label, failed="decrypt", reason=str(exc)))
            continue
        answers.append(Answer(label, secret=secret))
    return answers


@dataclass(frozen=True, slots=True)
class Passphrase:
    """A passphrase the servers gave: one server's plain secret, or K shares combined."""

    source: str  # the server, or "shares from SERVER, SERVER"
    secret: Secret


def passphrases(answers: Sequence[Answer]) -> list[Passphrase]:
    """Every plain secret in ANSWERS, and every set of which they hold K shares, combined.

    Shares of different sets (rotations) never combine; a corrupt share is left out.
    """
    judge = Judge(lambda _server, payload: Secret(payload))
    found: list[Passphrase] = []
    sharers: dict[bytes, list[str]] = {}  # set ID -> the servers that sent one of its shares
    for a in answers:
        if a.secret is None:
            continue
        payload = a.secret.reveal()
        if shares.is_share(payload):
            with contextlib.suppress(ShareError):
                sharers.setdefault(shares.parse(payload).set_id, []).append(a.server)
        match judge.judge(a.server, payload):
            case Done(secret) if shares.is_share(payload):
                servers = sharers[shares.parse(payload).set_id]
                found.append(Passphrase(f"shares from {', '.join(servers)}", secret))
            case Done(secret):
                found.append(Passphrase(a.server, secret))
    return found


def share_note(answer: Answer) -> str:
    """'' for a plain secret; '; share I of N (threshold K) of set X' for a share."""
    if answer.secret is None or not shares.is_share(answer.secret.reveal()):
        return ""
    try:
        return f"; {shares.parse(answer.secret.reveal()).describe()}"
    except ShareError as exc:
        return f"; an unusable share: {exc}"
