"""Test peers for mandos-client: real gpg keys, a real GnuTLS Mandos-server role, a real process.

``MandosPeer`` plays the Mandos *server* on 127.0.0.1 (or ::1) with ``Session.mandos_server``:
it reads the version line, does the TLS handshake as the TLS client, sends what the test says
and says bye. Each connection takes the next ``Reply`` from a list (the last one repeats).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from mandos.adapters.gnutls import Session
from mandos.adapters.tls_stream import TLSStream
from mandos.core.config import DEFAULT_PRIORITY
from mandos.core.values import KeyId

GPG: Final = ("gpg", "--batch", "--no-tty", "--quiet", "--no-permission-warning")
CLIENT: Final = "import sys; from mandos.client.main import main; sys.exit(main(sys.argv[1:]))"


@dataclass(frozen=True)
class PgpKey:
    """A gpg home with one key, its armoured exports written next to it."""

    home: Path
    fpr: str
    pubkey: Path
    seckey: Path
    passphrase: str = ""
    faked_time: str | None = None

    def gpg(self, *args: str, stdin: bytes = b"") -> bytes:
        extra = ["--faked-system-time", self.faked_time] if self.faked_time else []
        if self.passphrase:
            extra += ["--pinentry-mode", "loopback", "--passphrase", self.passphrase]
        return subprocess.run(
            [*GPG, "--homedir", str(self.home), *extra, *args],
            input=stdin,
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout

    def encrypt(self, plaintext: bytes, recipient: str | None = None) -> bytes:
        """A binary ``gpg --encrypt --sign`` message, as the reference's mandos-keygen makes."""
        to = recipient or self.fpr
        return self.gpg(
            "--trust-model",
            "always",
            "-u",
            self.fpr,
            "-r",
            to,
            "--encrypt",
            "--sign",
            stdin=plaintext,
        )

    def subkeys(self) -> list[str]:
        """Fingerprints of the encryption subkeys, in order."""
        out = self.gpg("--with-colons", "--list-keys", self.fpr).decode()
        fprs, last_sub = [], False
        for line in out.splitlines():
            fields = line.split(":")
            if fields[0] == "sub":
                last_sub = "e" in fields[11]
            elif fields[0] == "fpr" and last_sub:
                fprs.append(fields[9])
                last_sub = False
        return fprs

    def kill_agent(self) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "all"],
            capture_output=True,
            check=False,
            timeout=60,
        )


def make_pgp_key(
    where: Path, *, encryption_subkeys: int = 1, passphrase: str = "", faked_time: str | None = None
) -> PgpKey:
    """A fresh Ed25519 signing key with Curve25519 encryption subkeys (fast to make)."""
    home = where / "gnupg"
    home.mkdir(parents=True, mode=0o700)
    key = PgpKey(home, "", where / "pubkey.txt", where / "seckey.txt", passphrase, faked_time)
    key.gpg(
        "--passphrase",
        passphrase,
        "--quick-gen-key",
        "Mandos test <t@example>",
        "ed25519",
        "sign,cert",
        "never",
    )
    colons = key.gpg("--with-colons", "--list-keys").decode()
    fpr = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
    key = PgpKey(home, fpr, key.pubkey, key.seckey, passphrase, faked_time)
    for _ in range(encryption_subkeys):
        key.gpg("--passphrase", passphrase, "--quick-add-key", fpr, "cv25519", "encr", "never")
    key.pubkey.write_bytes(key.gpg("--armor", "--export", fpr))
    key.seckey.write_bytes(key.gpg("--armor", "--export-secret-keys", fpr))
    return key


Kind = Literal["secret", "silent", "raw", "close"]


@dataclass(frozen=True)
class Reply:
    """What the peer does on one connection: send ``data`` over TLS, stay silent, send ``data``
    in clear instead of TLS, or close right after the version line."""

    kind: Kind = "secret"
    data: bytes = b""


@dataclass
class MandosPeer:
    """A Mandos server role on loopback with real GnuTLS; ``async with`` starts and stops it."""

    replies: Sequence[Reply]
    host: str = "127.0.0.1"
    version_lines: list[bytes] = field(default_factory=list)
    key_ids: list[KeyId] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    port: int = 0
    _sock: socket.socket | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> MandosPeer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(64)
        sock.setblocking(False)
        self._sock, self.port = sock, sock.getsockname()[1]
        self._spawn(self._accept())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()

    @property
    def connect(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            reply = self.replies[min(len(self.version_lines), len(self.replies) - 1)]
            self.version_lines.append(b"")
            self._spawn(self._serve(conn, reply, len(self.version_lines) - 1))

    async def _serve(self, conn: socket.socket, reply: Reply, index: int) -> None:
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            line = b""
            while not line.endswith(b"\n"):
                chunk = await loop.sock_recv(conn, 1)
                if not chunk:
                    break
                line += chunk
            self.version_lines[index] = line
            self.connected.set()
            if reply.kind == "silent":
                await asyncio.sleep(3600)
            elif reply.kind == "raw":
                await loop.sock_sendall(conn, reply.data)
            elif reply.kind == "secret":
                stream = TLSStream(Session.mandos_server(conn.fileno(), DEFAULT_PRIORITY), conn)
                try:
                    await stream.handshake()
                    self.key_ids.append(stream.peer_key_id())
                    await stream.sendall(reply.data)
                    await stream.bye()
                finally:
                    stream.session.close()
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()


@dataclass
class ClientRun:
    """A running mandos-client process; ``stop()`` always reaps it."""

    proc: asyncio.subprocess.Process
    stderr_lines: list[str] = field(default_factory=list)

    async def wait_for_lines(self, needle: str, count: int = 1, limit: float = 60) -> None:
        """Read stderr until ``count`` lines contain ``needle``."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(limit):
            while sum(needle in ln for ln in self.stderr_lines) < count:
                raw = await self.proc.stderr.readline()
                if not raw:
                    raise AssertionError(f"client exited; stderr: {self.stderr_lines}")
                self.stderr_lines.append(raw.decode(errors="replace").rstrip("\n"))

    async def finish(self, limit: float = 60) -> tuple[int, bytes, str]:
        """Wait for exit: (returncode, stdout, all stderr)."""
        async with asyncio.timeout(limit):
            out, err = await self.proc.communicate()
        self.stderr_lines += err.decode(errors="replace").splitlines()
        assert self.proc.returncode is not None
        return self.proc.returncode, out, "\n".join(self.stderr_lines)

    async def terminate(
        self, sig: int = signal.SIGTERM, limit: float = 30
    ) -> tuple[int, bytes, str]:
        self.proc.send_signal(sig)
        return await self.finish(limit)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


async def start_client(args: Sequence[str], env: dict[str, str] | None = None) -> ClientRun:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLIENT,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    return ClientRun(proc)
