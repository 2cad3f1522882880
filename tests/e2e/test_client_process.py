"""Our mandos-client and our server, both as real processes, over loopback with --connect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import PASSWORD, OurKeys
from tests.server.ourserver import our_server

CLIENT = str(Path(sys.executable).parent / "mandos-client")


def run_client(keys: OurKeys, hooks: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The mandos-client console script; it never touches interfaces or runs a hook."""
    argv = [CLIENT, *keys.client_args(), "--interface=none", f"--network-hook-dir={hooks}", *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_password_on_stdout_exactly(ed25519_keys: OurKeys, tmp_path: Path, host: str) -> None:
    with our_server(ed25519_keys.conf(), host=host) as server:
        connect = f"[{host}]:{server.port}" if ":" in host else server.connect
        done = run_client(ed25519_keys, tmp_path, f"--connect={connect}", "--retry=1")
        server.wait_for_log("Sending secret to client1")
    assert (done.returncode, done.stdout) == (0, PASSWORD), done.stderr
    assert b"Traceback" not in done.stderr
