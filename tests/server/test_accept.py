"""AcceptLoop in-process when accept() itself fails with EMFILE (descriptors taken elsewhere)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mandos.adapters.gnutls import RawKeyCredentials, generate_ed25519_keypair
from mandos.client.session import Timeouts, fetch_encrypted_secret
from mandos.core.config import DEFAULT_PRIORITY
from mandos.server.accept import AcceptLoop
from tests.server.inprocess import loopback_listener, one_client_world

SECRET = b"served despite EMFILE"


def _open_descriptors() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


@contextlib.contextmanager
def _file_limit(soft: int) -> Iterator[None]:
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


async def test_emfile_sheds_the_oldest_unfinished_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mandos")
    private, public = generate_ed25519_keypair()
    world = one_client_world(public, SECRET, handshake_timeout=60)
    with loopback_listener() as listener, RawKeyCredentials.from_pem(public, private) as cred:
        address = listener.getsockname()
        serving = asyncio.create_task(AcceptLoop(listener, world.handler).run())
        await asyncio.sleep(0.05)  # the loop has computed its (generous) connection limit
        idle: list[socket.socket] = []
        spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(4)]
        try:
            with _file_limit(_open_descriptors() + 24):
                for _ in range(20):  # 20 client ends + their server ends: past the limit
                    sock = socket.socket()
                    sock.setblocking(False)
                    with contextlib.suppress(BlockingIOError):
                        sock.connect(address)
                    idle.append(sock)
                await asyncio.sleep(0.5)
                for fd in spare:  # room for the real client's own socket
                    os.close(fd)
                spare.clear()
                async with asyncio.timeout(20):
                    secret = await fetch_encrypted_secret(
                        socket.AF_INET, address, DEFAULT_PRIORITY, cred, Timeouts(receive=15)
                    )
        finally:
            for fd in spare:
                os.close(fd)
            for sock in idle:
                sock.close()
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
    assert secret == SECRET
    lines = [r.getMessage() for r in caplog.records if "shedding" in r.getMessage()]
    assert lines == [
        "accept() failed: Too many open files; shedding the oldest connections that have not"
        " finished their handshake"
    ]
