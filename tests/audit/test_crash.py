"""kill -9 in the middle of a storm: the audit chain verifies up to its last whole line, and
no client got a secret whose record is not in the file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from pathlib import Path

import pytest

from mandos.adapters.gnutls.keys import generate_ed25519_keypair
from mandos.audit.main import BrokenChain, verify
from mandos.audit.main import main as audit_main
from mandos.client.session import AttemptFailed, Timeouts, fetch_encrypted_secret
from mandos.core.config import DEFAULT_PRIORITY
from tests.server.conftest import TLSKey, client_section
from tests.server.ourserver import our_server

SECRET = b"\x85 crash test secret"
CLIENTS = 60
KILL_AFTER = 8


async def _storm(host: str, port: int, keys: list[TLSKey], pid: int) -> set[str]:
    got: set[str] = set()
    start = asyncio.Event()

    async def one(key: TLSKey) -> None:
        await start.wait()
        with key.credentials() as creds:
            try:
                data = await fetch_encrypted_secret(
                    socket.AF_INET, (host, port), DEFAULT_PRIORITY, creds, Timeouts(receive=30)
                )
            except (AttemptFailed, OSError):
                return
        if data == SECRET:
            got.add(key.key_id)
            if len(got) == KILL_AFTER:
                os.kill(pid, signal.SIGKILL)

    tasks = [asyncio.ensure_future(one(k)) for k in keys]
    await asyncio.sleep(0)
    start.set()
    await asyncio.gather(*tasks)
    return got


@pytest.mark.slow
def test_kill_9_during_a_storm(tmp_path: Path) -> None:
    keys = [TLSKey(*generate_ed25519_keypair()) for _ in range(CLIENTS)]
    conf = "".join(client_section(f"c{i}", k, SECRET) for i, k in enumerate(keys))
    audit = tmp_path / "audit.jsonl"
    with our_server(conf, extra_args=[f"--audit-log={audit}"]) as server:
        got = asyncio.run(_storm(server.host, server.port, keys, server.process.pid))
        assert server.process.wait(20) == -signal.SIGKILL
    assert len(got) >= KILL_AFTER
    data = audit.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    recorded = {
        json.loads(line)["key_id"]
        for line in whole.splitlines()
        if json.loads(line)["event"] == "secret_sent"
    }
    assert got <= recorded, "a client got a secret whose record is not on disk"
    if data != whole:  # only a torn last line may be wrong
        with pytest.raises(BrokenChain, match="truncated mid-line") as exc:
            verify([str(audit)])
        assert exc.value.line == len(data.split(b"\n"))
    else:
        verify([str(audit)])
    (tmp_path / "whole.jsonl").write_bytes(whole)
    assert audit_main(["verify", str(tmp_path / "whole.jsonl")]) == 0
    # A restarted server cuts a torn tail and goes on with the chain.
    with our_server(conf, extra_args=[f"--audit-log={audit}"]):
        pass
    assert audit_main(["verify", str(audit)]) == 0
