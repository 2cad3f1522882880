"""mandos-client without --connect: finds a server announced later over Zeroconf, in namespaces."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.client.conftest import KeySet
from tests.client.peer import CLIENT
from tests.netns import JsonLines, processes, requires_netns, run_in_ns, veth_pair_namespaces

ROOT = Path(__file__).parents[2]


@pytest.mark.netns
@requires_netns
@pytest.mark.parametrize("ipv4", [True, False], ids=["dual-stack", "ipv6-link-local-only"])
def test_finds_server_announced_later(keyset: KeySet, tmp_path: Path, ipv4: bool) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(keyset.pgp.encrypt(b"found by zeroconf"))
    args = [a for a in keyset.args() if a != "--interface=none"]
    with veth_pair_namespaces("mcz", ipv4=ipv4) as (a, b), processes() as procs:
        client = run_in_ns(
            b, [sys.executable, "-c", CLIENT, *args, f"--interface={b.ifname}", "--retry=0.5"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        procs.append(client)
        time.sleep(1)  # the client browses before the server exists
        server = run_in_ns(
            a, [sys.executable, "-m", "tests.client.ns_server", "--interface", a.ifname,
                "--secret-file", str(secret)],
            cwd=ROOT,
        )  # fmt: skip
        procs.append(server)
        event = JsonLines(server.stdout).next(timeout=60)
        assert event is not None
        assert event["event"] == "announced"
        out, err = client.communicate(timeout=90)
    assert (client.returncode, out) == (0, "found by zeroconf"), err
    assert "Traceback" not in err
