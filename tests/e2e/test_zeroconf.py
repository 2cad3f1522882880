"""Our full server (Zeroconf on) in namespace A, our client in namespace B: no --connect.

The veth link has IPv6 link-local addresses only, as an initramfs client usually does. The
client finds the server by browsing ``_mandos._tcp`` and gets the password.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import PASSWORD, OurKeys
from tests.netns import NsInfo, requires_netns, run_in_ns, stop, veth_pair_namespaces

pytestmark = [pytest.mark.netns, requires_netns, pytest.mark.timeout(300)]

CLIENT = str(Path(sys.executable).parent / "mandos-client")


@contextlib.contextmanager
def ns_server(
    ns: NsInfo, clients_conf: str, base: Path, servicename: str = "Mandos", *extra: str
) -> Iterator[Path]:
    """Our server with Zeroconf on ``ns``'s veth end, any port (``extra`` options added); yields
    its log file."""
    base.mkdir()
    (base / "state").mkdir()
    (base / "clients.conf").write_text(clients_conf)
    (base / "mandos.conf").write_text("[DEFAULT]\n")
    log = base / "server.log"
    argv = [sys.executable, "-m", "mandos.server", "--foreground", "--debug", "--no-dbus",
            f"--interface={ns.ifname}", f"--servicename={servicename}",
            f"--configdir={base}", f"--statedir={base / 'state'}", *extra]  # fmt: skip
    with log.open("wb") as out:
        proc = run_in_ns(ns, argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(log, "Listening on port", proc)
        yield log
    finally:
        proc.terminate()  # the server ignores stdin: SIGTERM first, as stop() does only later
        stop(proc, timeout=20)


def wait_for(log: Path, needle: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Wait until ``needle`` is in the log file (the process must stay alive)."""
    deadline = time.monotonic() + timeout
    while needle not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"exited early:\n{log.read_text(errors='replace')}"
        assert time.monotonic() < deadline, f"{needle!r} not logged:\n{log.read_text()}"
        time.sleep(0.05)


@contextlib.contextmanager
def ns_client(
    ns: NsInfo, keys: OurKeys, hooks: Path, *extra: str
) -> Iterator[subprocess.Popen[str]]:
    """Our client in ``ns``, browsing on its veth end only; stopped by PID at the end."""
    hooks.mkdir(exist_ok=True)
    argv = [CLIENT, *keys.client_args(), f"--interface={ns.ifname}",
            f"--network-hook-dir={hooks}", "--retry=1", *extra]  # fmt: skip
    proc = run_in_ns(
        ns, argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        stop(proc)


def finish(client: subprocess.Popen[str]) -> tuple[int, bytes, str]:
    """Wait for the client; its status, stdout as bytes, and stderr."""
    assert client.stdout is not None
    assert client.stderr is not None
    out = client.stdout.buffer.read()  # type: ignore[attr-defined]  # binary: beneath the text layer
    err = client.stderr.read()
    return client.wait(timeout=90), out, err


def test_client_finds_our_server(ed25519_keys: OurKeys, tmp_path: Path) -> None:
    with (
        veth_pair_namespaces("mze", ipv4=False) as (a, b),
        ns_server(a, ed25519_keys.conf(), tmp_path / "server") as log,
        ns_client(b, ed25519_keys, tmp_path / "hooks") as client,
    ):
        rc, out, err = finish(client)
        assert "Sending secret to client1" in log.read_text()
    assert (rc, out) == (0, PASSWORD), err
    assert "Traceback" not in err


def test_client_falls_back_from_a_server_that_refuses(
    ed25519_keys: OurKeys, tmp_path: Path
) -> None:
    """Two servers announced on one link; the first has the client disabled and is found first."""
    with (
        veth_pair_namespaces("mzt", ipv4=False) as (a, b),
        ns_server(
            a, ed25519_keys.conf(enabled="False"), tmp_path / "refuses", "Mandos refuses"
        ) as refusing,
        ns_client(b, ed25519_keys, tmp_path / "hooks") as client,
    ):
        wait_for(refusing, "is disabled", client)  # the client found it and was turned away
        with ns_server(a, ed25519_keys.conf(), tmp_path / "serves", "Mandos serves") as serving:
            rc, out, err = finish(client)
            assert "Sending secret to client1" in serving.read_text()
    assert (rc, out) == (0, PASSWORD), err
    assert "Traceback" not in err


def test_a_server_found_at_two_addresses_sends_the_secret_once(
    ed25519_keys: OurKeys, tmp_path: Path
) -> None:
    """IPv4 and IPv6 link-local, and the server holds the first request for a second (approval):
    the other address is not tried meanwhile, so the server sends the secret once."""
    conf = ed25519_keys.conf(approval_delay="PT1S", approved_by_default="True")
    with (
        veth_pair_namespaces("mzo", ipv4=True) as (a, b),
        ns_server(a, conf, tmp_path / "server") as log,
        ns_client(b, ed25519_keys, tmp_path / "hooks", "--debug") as client,
    ):
        rc, out, err = finish(client)
        sent = log.read_text().count("Sending secret to client1")
    assert (rc, out) == (0, PASSWORD), err
    assert "Found server 10.231.0.1:" in err
    assert "Found server [fe80::a%" in err
    assert sent == 1, err
