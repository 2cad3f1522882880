"""Zeroconf must not start before the IPv6 link-local address has passed DAD."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from mandos.client.network import usable_link_local
from tests.netns import requires_netns

IF_INET6 = """\
fe800000000000000000000000000001 02 40 20 80     eth0
fe800000000000000000000000000002 03 40 20 c0     eth1
fe800000000000000000000000000003 04 40 20 88     eth2
20010db8000000000000000000000004 05 40 00 80     eth3
00000000000000000000000000000001 01 80 10 80       lo
garbage line
fe80000000000000000000000000000x 06 40 zz 80     eth4
"""


def test_only_link_local_addresses_past_dad_count() -> None:
    # eth1 is tentative (0x40), eth2 failed DAD (0x08), eth3 is global, lo is host scope.
    assert usable_link_local(IF_INET6) == {"eth0"}


@requires_netns
@pytest.mark.netns
def test_wait_returns_once_dad_is_done() -> None:
    ns = f"mandos-dad-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        ip = ["ip", "-n", ns]
        subprocess.run([*ip, "link", "add", "va", "type", "veth", "peer", "name", "vb"], check=True)
        probe = textwrap.dedent("""
            import subprocess
            from pathlib import Path
            from mandos.client.network import (
                PROC_IF_INET6,
                read_text,
                usable_link_local,
                wait_for_link_local,
            )
            for conf in ("default", "va", "vb"):
                Path(f"/proc/sys/net/ipv6/conf/{conf}/accept_dad").write_text("1")
            for name in ("vb", "va"):
                subprocess.run(["ip", "link", "set", name, "up"], check=True)
            before = "va" in usable_link_local(read_text(PROC_IF_INET6))
            wait_for_link_local(["va"], 10)
            after = "va" in usable_link_local(read_text(PROC_IF_INET6))
            print(before, after)
        """)
        done = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", probe],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert done.stdout.split() == ["False", "True"], done.stderr
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
