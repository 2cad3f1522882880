"""mandos-luks test without --connect finds the server by Zeroconf (in private namespaces)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from tests.luks.conftest import LUKS, Rig
from tests.netns import JsonLines, processes, requires_netns, run_in_ns, veth_pair_namespaces

ROOT = Path(__file__).parents[2]


def encrypted_secret(section: str) -> bytes:
    """The binary OpenPGP message of a clients.conf section's ``secret``."""
    lines = section.splitlines()
    start = lines.index("secret =") + 1
    body = [ln.strip() for ln in lines[start:] if ln.startswith("    ")]
    return base64.b64decode("".join(body))


@pytest.mark.netns
@requires_netns
def test_test_finds_the_server_by_zeroconf(rig: Rig) -> None:
    secret = rig.base / "secret.bin"
    secret.write_bytes(encrypted_secret(rig.bind()))
    with veth_pair_namespaces("mlz") as (a, b), processes() as procs:
        server = run_in_ns(
            a, [sys.executable, "-m", "tests.client.ns_server", "--interface", a.ifname,
                "--secret-file", str(secret)],
            cwd=ROOT,
        )  # fmt: skip
        procs.append(server)
        event = JsonLines(server.stdout).next(timeout=60)
        assert event is not None
        assert event["event"] == "announced"
        test = run_in_ns(
            b, [LUKS, "test", *rig.common(), str(rig.image)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        procs.append(test)
        out, err = test.communicate(timeout=90)
    assert test.returncode == 0, out + err
    assert "fetch: ok; decrypt: ok" in out
    assert f"{rig.image}: open: ok" in out
