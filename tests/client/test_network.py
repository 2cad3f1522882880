"""Interface choice, hooks (REFERENCE A12) and bringing interfaces up and down in a namespace."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mandos.client.args import ClientOptions, parse_args
from mandos.client.network import (
    IFF_BROADCAST,
    IFF_LOOPBACK,
    IFF_NOARP,
    IFF_POINTOPOINT,
    IFF_UP,
    choose_interfaces,
    find_hooks,
    hook_environment,
    suitable,
)
from tests.client.conftest import KeySet
from tests.client.peer import CLIENT, start_client
from tests.netns import requires_netns

ETHER = IFF_BROADCAST | 0x1000  # broadcast + multicast, as a veth or Ethernet card
FLAGS = {
    "lo": IFF_LOOPBACK | IFF_UP,
    "eth0": ETHER,
    "eth1": ETHER | IFF_UP,
    "tun0": IFF_POINTOPOINT | IFF_NOARP,
    "ppp0": IFF_POINTOPOINT,
    "noarp0": ETHER | IFF_NOARP,
}


def _opts(*argv: str) -> ClientOptions:
    parsed = parse_args(argv)
    assert isinstance(parsed, ClientOptions)
    return parsed


@pytest.mark.parametrize(
    ("flags", "zeroconf", "connect"),
    [(FLAGS["lo"], False, False), (ETHER, True, True), (FLAGS["tun0"], False, False),
     (FLAGS["ppp0"], False, True), (FLAGS["noarp0"], False, False), (0, False, True)],
)  # fmt: skip
def test_suitable(flags: int, zeroconf: bool, connect: bool) -> None:
    assert suitable(flags, connect=False) is zeroconf
    assert suitable(flags, connect=True) is connect


def test_choose_automatically() -> None:
    assert choose_interfaces(_opts(), FLAGS) == (["eth0", "eth1"], ["eth0", "eth1"], [])
    use, up, _ = choose_interfaces(_opts("--connect=10.0.0.1:1"), FLAGS)
    assert use == up == ["eth0", "eth1", "ppp0"]


def test_choose_named_none_and_missing() -> None:
    use, up, missing = choose_interfaces(_opts("-i", "eth1,tun0,none,eth0,gone"), FLAGS)
    assert (use, up, missing) == (["eth1", "tun0", "eth0"], ["eth1", "tun0"], ["gone"])
    use, up, _ = choose_interfaces(_opts("-i", "none"), FLAGS)
    assert (use, up) == (["eth0", "eth1"], [])


def test_hook_environment() -> None:
    opts = _opts("-i", "eth0,eth1", "--connect=10.0.0.1:4711", "--debug", "--network-hook-dir=/h")
    env = hook_environment("start", opts, {"PATH": "/bin"})
    assert env == {
        "PATH": "/bin",
        "MANDOSNETHOOKDIR": "/h",
        "DEVICE": "eth0,eth1",
        "MODE": "start",
        "VERBOSITY": "1",
        "DELAY": "2.500000",
        "CONNECT": "10.0.0.1:4711",
    }
    files = hook_environment("files", _opts(), {})
    assert files == {"MANDOSNETHOOKDIR": "/lib/mandos/network-hooks.d", "DEVICE": "",
                     "MODE": "files", "VERBOSITY": "0"}  # fmt: skip


def _hook(path: Path, body: str, mode: int = 0o755) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(mode)


def test_find_hooks(tmp_path: Path) -> None:
    for name in ("20-b", "10.a", "A_z", "bad name", "bad~", "x.dpkg-old"):
        _hook(tmp_path / name, "true")
    _hook(tmp_path / "noexec", "true", mode=0o644)
    (tmp_path / "dir").mkdir()
    names = [Path(p).name for p in find_hooks(str(tmp_path))]
    assert names == ["10.a", "20-b", "A_z", "x.dpkg-old"]
    assert find_hooks(str(tmp_path / "missing")) == []


async def test_hooks_run_start_then_stop(keyset: KeySet, tmp_path: Path) -> None:
    log = tmp_path / "log"
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    record = f'echo "$(basename "$0") $* $MODE $DEVICE $VERBOSITY $DELAY $CONNECT" >> {log}'
    _hook(hooks / "a-first", f"{record}\necho to-stdout")
    _hook(hooks / "b-fails", f"{record}\nexit 3")
    _hook(hooks / "bad~name", f"{record}")
    argv = [*keyset.args(), f"--network-hook-dir={hooks}", "--connect=127.0.0.1:9", "--retry=0.2"]
    client = await start_client(argv)
    try:
        await client.wait_for_lines("127.0.0.1:9")
        rc, out, err = await client.terminate()
    finally:
        await client.stop()
    assert (rc, out) == (-signal.SIGTERM, b"")  # a hook's stdout goes to stderr
    assert "to-stdout" in err
    assert "b-fails start exited with status 3" in err
    assert log.read_text().splitlines() == [
        "a-first start start none 0 2.500000 127.0.0.1:9",
        "b-fails start start none 0 2.500000 127.0.0.1:9",
        "a-first stop stop none 0 2.500000 127.0.0.1:9",
        "b-fails stop stop none 0 2.500000 127.0.0.1:9",
    ]


def _link_up(ns: str, ifname: str) -> bool:
    out = subprocess.run(
        ["ip", "-n", ns, "-o", "link", "show", ifname],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return ",UP" in out or "<UP" in out


@pytest.fixture
def namespace() -> Iterator[str]:
    """A namespace with two veth ends (both down) and a down loopback."""
    name = f"mcl-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        subprocess.run(
            ["ip", "-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
            check=True, timeout=30,
        )  # fmt: skip
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


@pytest.mark.netns
@requires_netns
@pytest.mark.parametrize("named", [True, False])
async def test_interfaces_brought_up_and_down_again(
    keyset: KeySet, namespace: str, named: bool
) -> None:
    """Up while it runs, down again after SIGTERM; "lo" is never chosen automatically."""
    args = [a for a in keyset.args() if a != "--interface=none"]
    args += ["--connect=127.0.0.1:9", "--retry=0.2", "--delay=0.5"]
    if named:
        args.append("--interface=v0")
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", namespace, sys.executable, "-c", CLIENT, *args,
        stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        async with asyncio.timeout(60):
            while b"Network is unreachable" not in await proc.stderr.readline():
                pass
        assert _link_up(namespace, "v0")
        assert _link_up(namespace, "v1") is not named
        assert not _link_up(namespace, "lo")
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await proc.wait()
        assert proc.returncode == -signal.SIGTERM
        assert not _link_up(namespace, "v0")
        assert not _link_up(namespace, "v1")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
