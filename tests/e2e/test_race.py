"""The race (client/race.py) against servers that never answer: one accepts and stays silent,
one is behind a blackhole route (SYNs vanish), one is good. Client in namespace A, servers in B.

No timed assertions: the proof is the order of events. Both bad servers are tried first, and
the password arrives before their deadline has passed (no deadline warning was logged).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import PASSWORD, OurKeys
from tests.e2e.test_zeroconf import ns_server
from tests.netns import NsInfo, requires_netns, run_in_ns, stop, veth_pair_namespaces
from tests.netns import _ip as ip
from tests.netns import _ns_sh as ns_sh

pytestmark = [pytest.mark.netns, requires_netns, pytest.mark.timeout(300)]

CLIENT = str(Path(sys.executable).parent / "mandos-client")
BLACKHOLED = "10.231.9.9"  # routed from A to B, where a blackhole route drops it
SILENT_PORT = 4711
GOOD_PORT = 4712
SILENT = (
    "import socket, sys, time\n"
    "s = socket.create_server((sys.argv[1], int(sys.argv[2])))\n"
    "print('listening', flush=True)\n"
    "conns = []\n"
    "while True:\n"
    "    conns.append(s.accept())  # and never a byte back\n"
)


@contextlib.contextmanager
def silent_server(ns: NsInfo) -> Iterator[None]:
    """Accepts TCP connections on ns's address and never answers."""
    assert ns.ipv4 is not None
    proc = run_in_ns(ns, [sys.executable, "-c", SILENT, ns.ipv4, str(SILENT_PORT)])
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "listening\n"
        yield
    finally:
        stop(proc)


def good_server(
    ns: NsInfo, clients_conf: str, base: Path
) -> contextlib.AbstractContextManager[Path]:
    """Our server on ns's IPv4 address and GOOD_PORT, no Zeroconf; yields its log file."""
    extra = ("--no-zeroconf", f"--address={ns.ipv4}", f"--port={GOOD_PORT}")
    return ns_server(ns, clients_conf, base, "Mandos", *extra)


def blackhole(a: NsInfo, b: NsInfo) -> None:
    """A sends BLACKHOLED to B; B forwards it into a blackhole route: silently dropped."""
    ip("-n", a.name, "-4", "route", "add", f"{BLACKHOLED}/32", "via", str(b.ipv4))
    ns_sh(b.name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    ip("-n", b.name, "-4", "route", "add", "blackhole", f"{BLACKHOLED}/32")


def run_client(
    ns: NsInfo, keys: OurKeys, hooks: Path, *args: str, for_at_most: float
) -> tuple[int, bytes, str]:
    hooks.mkdir(exist_ok=True)
    argv = [CLIENT, *keys.client_args(), "--interface=none", f"--network-hook-dir={hooks}",
            "--retry=1", "--debug", *args]  # fmt: skip
    proc = run_in_ns(ns, argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        try:
            proc.wait(timeout=for_at_most)
        except subprocess.TimeoutExpired:
            proc.terminate()
        assert proc.stdout is not None
        assert proc.stderr is not None
        out = proc.stdout.buffer.read()  # type: ignore[attr-defined]  # bytes beneath the text
        err = proc.stderr.read()
        return proc.wait(timeout=30), out, err
    finally:
        stop(proc)


def test_password_arrives_before_the_deadline_of_silent_and_dropping_servers(
    ed25519_keys: OurKeys, tmp_path: Path
) -> None:
    with (
        veth_pair_namespaces("mrc", ipv4=True) as (a, b),
        silent_server(b),
        good_server(b, ed25519_keys.conf(), tmp_path / "good"),
    ):
        blackhole(a, b)
        rc, out, err = run_client(
            a, ed25519_keys, tmp_path / "hooks",
            f"--connect={BLACKHOLED}:4711",  # tried first: its SYNs vanish
            f"--connect={b.ipv4}:{SILENT_PORT}",  # then this one: accepts, never answers
            f"--connect={b.ipv4}:{GOOD_PORT}",  # last
            "--deadline=30", for_at_most=60,
        )  # fmt: skip
    assert (rc, out) == (0, PASSWORD), err
    lines = err.splitlines()
    order = [next(i for i, ln in enumerate(lines) if f"Connecting to {t}" in ln)
             for t in (BLACKHOLED, f"{b.ipv4}:{SILENT_PORT}", f"{b.ipv4}:{GOOD_PORT}")]  # fmt: skip
    assert order == sorted(order), err
    assert "within 30 seconds" not in err  # neither bad server's deadline had passed


def test_the_deadline_ends_attempts_to_silent_and_dropping_servers(
    ed25519_keys: OurKeys, tmp_path: Path
) -> None:
    with veth_pair_namespaces("mrd", ipv4=True) as (a, b), silent_server(b):
        blackhole(a, b)
        rc, out, err = run_client(
            a, ed25519_keys, tmp_path / "hooks",
            f"--connect={BLACKHOLED}:4711", f"--connect={b.ipv4}:{SILENT_PORT}",
            "--deadline=1", for_at_most=5,
        )  # fmt: skip
    assert (rc, out) == (-15, b""), err
    for target in (f"{BLACKHOLED}:4711", f"{b.ipv4}:{SILENT_PORT}"):
        assert f"{target}: no connection and TLS handshake within 1 seconds" in err, err
    assert "Traceback" not in err
