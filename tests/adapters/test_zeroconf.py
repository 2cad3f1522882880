"""Zeroconf announce and browse: pure helpers here, real mDNS between two network namespaces."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mandos.adapters.zeroconf_service import (
    Interface,
    ZeroconfAnnouncer,
    alternative_name,
    announce_forever,
    find_interfaces,
    zeroconf_interfaces,
)
from mandos.client.discovery import ServerAddress, connect_args
from mandos.core.config import ServerConfig
from mandos.core.errors import ConfigError, ZeroconfError
from tests.netns import (
    JsonLines,
    NsInfo,
    processes,
    requires_netns,
    run_in_ns,
    veth_pair_namespaces,
)

PEER = str(Path(__file__).with_name("zeroconf_peer.py"))
WAIT = 60.0  # seconds; registration takes ~1.2 s, but the CI machine is shared and busy

Event = dict[str, Any]

# -- pure helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Mandos", "Mandos #2"),
        ("Mandos #2", "Mandos #3"),
        ("Mandos #9", "Mandos #10"),
        ("My server", "My server #2"),
        ("Mandos#2", "Mandos#2 #2"),
        ("x" * 63, "x" * 60 + " #2"),
    ],
)
def test_alternative_name_counts_like_avahi(name: str, expected: str) -> None:
    assert alternative_name(name) == expected


def test_connect_args_keep_the_ipv6_scope() -> None:
    ll = ServerAddress("fe80::1", 4242, 3, "Mandos")
    assert connect_args(ll) == ("fe80::1", 4242, 0, 3)
    assert ll.family is socket.AF_INET6
    assert str(ll) == "[fe80::1%3]:4242"
    v4 = ServerAddress("192.0.2.1", 80)
    assert connect_args(v4) == ("192.0.2.1", 80)
    assert v4.family is socket.AF_INET
    assert str(v4) == "192.0.2.1:80"
    assert ServerAddress("2001:db8::1", 1) == ServerAddress("2001:db8::1", 1, None, "other name")


def test_find_interfaces_reports_missing_names() -> None:
    found, missing = find_interfaces(["lo", "no-such-if0"])
    assert [i.name for i in found] == ["lo"]
    assert missing == ["no-such-if0"]
    default, _ = find_interfaces()
    assert "lo" not in [i.name for i in default]


def test_zeroconf_interfaces_choose_families() -> None:
    eth = Interface("eth0", 7, ("192.0.2.1", "192.0.2.2"), ("fe80::1",))
    v6only = Interface("eth1", 8, (), ("fe80::2",))
    choice, version = zeroconf_interfaces([eth, v6only], use_ipv6=True)
    assert (choice, version.name) == ([7, 8, "192.0.2.1"], "All")
    choice, version = zeroconf_interfaces([eth, v6only], use_ipv6=False)
    assert (choice, version.name) == (["192.0.2.1"], "V4Only")
    choice, version = zeroconf_interfaces([v6only], use_ipv6=True)
    assert (choice, version.name) == ([8], "V6Only")
    with pytest.raises(ZeroconfError, match="no IPv4 address"):
        zeroconf_interfaces([v6only], use_ipv6=False)
    with pytest.raises(ZeroconfError):
        zeroconf_interfaces([], use_ipv6=True)


async def test_announcer_refuses_unknown_interface() -> None:
    announcer = ZeroconfAnnouncer(4242, interfaces=["no-such-if0"])
    with pytest.raises(ConfigError, match="no-such-if0"):
        await announcer.start()
    assert announcer.name == "Mandos"
    with pytest.raises(ConfigError):
        await announce_forever(ServerConfig(interface="no-such-if0"), 4242)


# -- two namespaces ----------------------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[NsInfo, NsInfo]]:
    with veth_pair_namespaces("mzc") as ends:
        yield ends


def wait_for(lines: JsonLines, want: Callable[[Event], bool], seen: list[Event]) -> Event:
    """The first event in ``seen``, or read into it, that satisfies ``want``; fail on errors."""
    for old in seen:
        if want(old):
            return old
    deadline = time.monotonic() + WAIT
    while True:
        event = lines.next(max(0.1, deadline - time.monotonic()))
        assert event is not None, f"peer ended early; events: {seen}"
        seen.append(event)
        assert event["event"] != "error", event
        if want(event):
            return event


def peer(ns: NsInfo, *args: str) -> list[str]:
    return [sys.executable, PEER, *args, "--interface", ns.ifname]


def found(host: str, port: int) -> Callable[[Event], bool]:
    return lambda e: e["event"] == "found" and e["host"] == host and e["port"] == port


@pytest.mark.netns
@requires_netns
def test_browser_finds_a_server_announced_later(pair: tuple[NsInfo, NsInfo]) -> None:
    a, b = pair
    with processes() as procs:
        procs.append(browser := run_in_ns(b, peer(b, "browse")))
        events = JsonLines(browser.stdout)
        seen: list[Event] = []
        wait_for(events, lambda e: e["event"] == "browsing", seen)
        procs.append(server := run_in_ns(a, peer(a, "announce", "--port", "4242")))
        announced = wait_for(JsonLines(server.stdout), lambda e: e["event"] != "renamed", [])
        assert announced == {"event": "announced", "name": "Mandos"}
        ll = wait_for(events, found(a.ll6, 4242), seen)
        assert ll == {
            "event": "found",
            "host": "fe80::a",
            "port": 4242,
            "ifindex": b.ifindex,
            "name": "Mandos",
        }
        v4 = wait_for(events, found("10.231.0.1", 4242), seen)
        assert v4["ifindex"] is None
    founds = [(e["host"], e["port"], e["ifindex"]) for e in seen if e["event"] == "found"]
    assert len(founds) == len(set(founds)), "an address was reported twice"


@pytest.mark.netns
@requires_netns
def test_second_server_with_the_same_name_is_renamed(pair: tuple[NsInfo, NsInfo]) -> None:
    a, b = pair
    with processes() as procs:
        procs.append(first := run_in_ns(a, peer(a, "announce", "--port", "1001")))
        first_events: list[Event] = []
        wait_for(JsonLines(first.stdout), lambda e: e["event"] == "announced", first_events)
        assert first_events == [{"event": "announced", "name": "Mandos"}]
        procs.append(second := run_in_ns(b, peer(b, "announce", "--port", "1002")))
        second_events: list[Event] = []
        wait_for(JsonLines(second.stdout), lambda e: e["event"] == "announced", second_events)
        assert second_events == [
            {"event": "renamed", "name": "Mandos #2"},
            {"event": "announced", "name": "Mandos #2"},
        ]
        procs.append(browser := run_in_ns(a, peer(a, "browse")))
        events = JsonLines(browser.stdout)
        seen: list[Event] = []
        assert wait_for(events, found(b.ll6, 1002), seen)["name"] == "Mandos #2"
        assert wait_for(events, found(a.ll6, 1001), seen)["name"] == "Mandos"


@pytest.mark.netns
@requires_netns
def test_ipv4_only_server_is_found(pair: tuple[NsInfo, NsInfo]) -> None:
    a, b = pair
    with processes() as procs:
        procs.append(server := run_in_ns(a, peer(a, "announce", "--port", "4343", "--no-ipv6")))
        wait_for(JsonLines(server.stdout), lambda e: e["event"] == "announced", [])
        procs.append(browser := run_in_ns(b, peer(b, "browse")))
        seen: list[Event] = []
        hit = wait_for(JsonLines(browser.stdout), found("10.231.0.1", 4343), seen)
        assert hit["ifindex"] is None
    assert all(":" not in e["host"] for e in seen if e["event"] == "found"), seen


@pytest.mark.netns
@requires_netns
def test_ipv6_link_local_only_network() -> None:
    with veth_pair_namespaces("mzc", ipv4=False) as (a, b), processes() as procs:
        procs.append(server := run_in_ns(a, peer(a, "announce", "--port", "4444")))
        wait_for(JsonLines(server.stdout), lambda e: e["event"] == "announced", [])
        procs.append(browser := run_in_ns(b, peer(b, "browse")))
        hit = wait_for(JsonLines(browser.stdout), found(a.ll6, 4444), [])
        assert hit["ifindex"] == b.ifindex


AVAHI_CONF = """\
[server]
use-ipv4=yes
use-ipv6=yes
allow-interfaces={ifname}
enable-dbus=no
"""
# What the reference server asks Avahi for: "Mandos", _mandos._tcp, IPv6, empty TXT.
AVAHI_SERVICE = """\
<?xml version="1.0" standalone="no"?>
<service-group><name>Mandos</name>
<service protocol="ipv6"><type>_mandos._tcp</type><port>1111</port></service>
</service-group>
"""


@pytest.mark.netns
@requires_netns
@pytest.mark.skipif(shutil.which("avahi-daemon") is None, reason="needs avahi-daemon")
def test_coexists_with_avahi_daemon(pair: tuple[NsInfo, NsInfo], tmp_path: Path) -> None:
    a, b = pair
    conf = tmp_path / "avahi"
    (conf / "services").mkdir(parents=True)
    (conf / "avahi-daemon.conf").write_text(AVAHI_CONF.format(ifname=a.ifname))
    (conf / "services" / "mandos.service").write_text(AVAHI_SERVICE)
    # A private mount namespace gives this avahi-daemon its own /etc/avahi and /run.
    script = (
        f"mount --bind {conf} /etc/avahi && mount -t tmpfs none /run && "
        "mkdir /run/avahi-daemon && exec avahi-daemon --no-drop-root --no-chroot --debug"
    )
    with processes() as procs:
        procs.append(browser := run_in_ns(b, peer(b, "browse")))
        events = JsonLines(browser.stdout)
        seen: list[Event] = []
        wait_for(events, lambda e: e["event"] == "browsing", seen)
        avahi = run_in_ns(
            a,
            ["unshare", "-m", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        procs.append(avahi)
        assert wait_for(events, found(a.ll6, 1111), seen)["name"] == "Mandos"
        procs.append(server := run_in_ns(a, peer(a, "announce", "--port", "4242")))
        ours: list[Event] = []
        wait_for(JsonLines(server.stdout), lambda e: e["event"] == "announced", ours)
        assert ours[-1] == {"event": "announced", "name": "Mandos #2"}
        assert wait_for(events, found(a.ll6, 4242), seen)["name"] == "Mandos #2"
        assert avahi.poll() is None, "avahi-daemon died"
        avahi.terminate()
        log, _ = avahi.communicate(timeout=WAIT)
    assert "Host name conflict" not in log, log
    assert "successfully established" in log, log
