"""Our server's D-Bus API (REFERENCE A7) on a private dbus-daemon, checked member by member.

The server runs as a real process; the test talks to it with dbus-fast as a plain bus client
(and with busctl as another user for the policy). Expected types come from REFERENCE A7, written
out here again on purpose, not read from the adapter's own tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from mandos.adapters import dbus_api
from mandos.adapters.gnutls.keys import generate_ed25519_keypair
from mandos.core.errors import LocalProtocolError
from tests.interop.reference import PrivateSystemBus
from tests.server.conftest import TLSKey, client_section, fetch
from tests.server.ourserver import RunningServer, our_server

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "integration" / "dbus" / "mandos.conf"
SECRET = b"\x85 opaque blob"
CLIENT = "/clients/client1"
C_IFACES = ("se.recompile.Mandos.Client", "se.bsnet.fukt.Mandos.Client")
S_IFACES = ("se.recompile.Mandos", "se.bsnet.fukt.Mandos")
PROPS = "org.freedesktop.DBus.Properties"
#: REFERENCE A7, property table: name -> (type, access).
A7_PROPERTIES = {
    **dict.fromkeys(
        ("ApprovalDelay", "ApprovalDuration", "Interval", "Timeout", "ExtendedTimeout"),
        ("t", "readwrite"),
    ),
    "ApprovalPending": ("b", "read"),
    "ApprovedByDefault": ("b", "readwrite"),
    "Checker": ("s", "readwrite"),
    "CheckerRunning": ("b", "readwrite"),
    "Created": ("s", "read"),
    "Enabled": ("b", "readwrite"),
    **dict.fromkeys(("Expires", "LastEnabled", "LastApprovalRequest"), ("s", "read")),
    "LastCheckedOK": ("s", "readwrite"),
    "LastCheckerStatus": ("n", "read"),
    **dict.fromkeys(("Fingerprint", "KeyID", "Name"), ("s", "read")),
    "Host": ("s", "readwrite"),
    "Secret": ("ay", "write"),
    "ObjectPath": ("o", "read"),
}


# -- pure: value conversion and introspection ------------------------------------------------


def test_dates_are_naive_utc_isoformat() -> None:
    cet = timezone(timedelta(hours=1))
    assert dbus_api.date_to_wire(None) == ""
    assert dbus_api.date_to_wire(datetime(2024, 5, 1, 13, 0, 0, 123456, cet)) == (
        "2024-05-01T12:00:00.123456"
    )
    # The reference's quirk (A19.9): no ".000000" when the microseconds are zero.
    assert dbus_api.date_to_wire(datetime(2024, 5, 1, 12, tzinfo=UTC)) == "2024-05-01T12:00:00"


def test_property_values_convert_both_ways() -> None:
    assert dbus_api.to_wire("Timeout", timedelta(minutes=5, microseconds=999)) == 300000
    assert dbus_api.to_wire("LastCheckerStatus", -2) == -2
    assert dbus_api.to_wire("Expires", None) == ""
    assert dbus_api.from_wire("Interval", "t", 1500) == timedelta(seconds=1.5)
    assert dbus_api.from_wire("Interval", "i", 1500) == timedelta(seconds=1.5)  # mandos-ctl
    assert dbus_api.from_wire("LastCheckedOK", "b", True) == ""  # any write is a check
    with pytest.raises(LocalProtocolError, match="negative"):
        dbus_api.from_wire("Timeout", "i", -1)
    assert dbus_api.from_wire("Secret", "ay", b"\x00\xff") == b"\x00\xff"
    with pytest.raises(LocalProtocolError, match="type 't'"):
        dbus_api.from_wire("Timeout", "s", "PT5M")
    with pytest.raises(LocalProtocolError, match="out of range"):
        dbus_api.from_wire("Timeout", "t", 2**64 - 1)
    with pytest.raises(LocalProtocolError, match="not writable"):
        dbus_api.from_wire("Name", "s", "x")


def _parse(xml: str) -> ET.Element:
    return ET.fromstring(xml)  # noqa: S314 - our own XML, not untrusted input


def _interfaces(xml: str) -> dict[str, ET.Element]:
    return {i.attrib["name"]: i for i in _parse(xml).iter("interface")}


def _annotations(element: ET.Element) -> dict[str, str]:
    return {a.attrib["name"]: a.attrib["value"] for a in element.findall("annotation")}


def test_client_introspection_has_every_a7_member_with_annotations() -> None:
    found = _interfaces(dbus_api.client_introspection(CLIENT))
    for name in C_IFACES:
        iface = found[name]
        props = {p.attrib["name"]: p for p in iface.iter("property")}
        assert {n: (p.attrib["type"], p.attrib["access"]) for n, p in props.items()} == (
            A7_PROPERTIES
        )
        assert _annotations(props["Secret"]) == {
            "org.freedesktop.DBus.Property.EmitsChangedSignal": "invalidates"
        }
        assert _annotations(props["ObjectPath"])["org.freedesktop.DBus.Deprecated"] == "true"
        methods = {m.attrib["name"]: m for m in iface.iter("method")}
        assert set(methods) == {
            "Approve", "CheckedOK", "Enable", "Disable", "StartChecker", "StopChecker",
        }  # fmt: skip
        assert _annotations(methods["Enable"]) == dbus_api.DEPRECATED
        signals = {
            s.attrib["name"]: "".join(a.attrib["type"] for a in s.iter("arg"))
            for s in iface.iter("signal")
        }
        assert signals == {
            "CheckerCompleted": "nxs", "CheckerStarted": "s", "GotSecret": "",
            "NeedApproval": "tb", "Rejected": "s", "PropertyChanged": "sv",
        }  # fmt: skip
    assert _annotations(found["se.bsnet.fukt.Mandos.Client"]) == dbus_api.DEPRECATED
    assert _annotations(found["se.recompile.Mandos.Client"]) == {}


def test_server_introspection_lists_both_prefixes_and_children() -> None:
    xml = dbus_api.server_introspection(["clients"])
    found = _interfaces(xml)
    assert "org.freedesktop.DBus.ObjectManager" in found
    for name in S_IFACES:
        sigs = {
            s.attrib["name"]: "".join(a.attrib["type"] for a in s.iter("arg"))
            for s in found[name].iter("signal")
        }
        assert sigs == {"ClientAdded": "o", "ClientNotFound": "ss", "ClientRemoved": "os"}
    assert [n.attrib["name"] for n in _parse(xml).findall("node")] == ["clients"]


# -- a live server on a private bus ----------------------------------------------------------


class Peer:
    """A plain bus client: calls methods on the server and records every signal it sends."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus
        self.signals: list[Message] = []
        bus.add_message_handler(self._record)

    def _record(self, msg: Message) -> bool:
        if msg.message_type is MessageType.SIGNAL and msg.sender != "org.freedesktop.DBus":
            self.signals.append(msg)
        return False

    async def call(
        self, path: str, iface: str, member: str, signature: str = "", body: list[Any] | None = None
    ) -> Message:
        msg = Message(
            destination="se.recompile.Mandos", path=path, interface=iface, member=member,
            signature=signature, body=body or [],
        )  # fmt: skip
        reply = await self.bus.call(msg)
        assert reply is not None
        return reply

    async def ok(self, *args: Any) -> list[Any]:
        reply = await self.call(*args)
        assert reply.message_type is MessageType.METHOD_RETURN, reply.body
        return list(reply.body)

    async def error(self, *args: Any) -> tuple[str, str]:
        reply = await self.call(*args)
        assert reply.message_type is MessageType.ERROR
        assert reply.error_name is not None
        return reply.error_name, str(reply.body[0])

    async def props(self, path: str = CLIENT, iface: str = C_IFACES[0]) -> dict[str, Variant]:
        (props,) = await self.ok(path, PROPS, "GetAll", "s", [iface])
        assert isinstance(props, dict)
        return props

    async def set(self, prop: str, variant: Variant, path: str = CLIENT) -> None:
        await self.ok(path, PROPS, "Set", "ssv", [C_IFACES[0], prop, variant])

    async def wait_for(self, pred: Callable[[Message], bool], limit: float = 30) -> Message:
        async with asyncio.timeout(limit):
            while True:
                for msg in self.signals:
                    if pred(msg):
                        return msg
                await asyncio.sleep(0.05)

    def named(self, member: str, path: str | None = None) -> list[Message]:
        return [s for s in self.signals if s.member == member and path in (None, s.path)]


@pytest.fixture
def private_bus() -> Iterator[PrivateSystemBus]:
    with PrivateSystemBus() as bus:
        yield bus


@contextlib.asynccontextmanager
async def served(
    bus: PrivateSystemBus, clients_conf: str
) -> AsyncIterator[tuple[Peer, RunningServer]]:
    """Our server with D-Bus on ``bus``, and a peer that sees every signal from the start."""
    client = await MessageBus(bus_address=bus.address).connect()
    peer = Peer(client)
    rule = "type='signal',sender='se.recompile.Mandos'"
    await client.call(
        Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus", member="AddMatch", signature="s",
                body=[rule])
    )  # fmt: skip
    try:
        with our_server(clients_conf, use_dbus=True, env=bus.env) as server:
            await peer.wait_for(lambda s: s.member == "ClientAdded", limit=60)
            yield peer, server
    finally:
        client.disconnect()


@pytest.fixture
def key() -> TLSKey:
    return TLSKey(*generate_ed25519_keypair())


def _conf(key: TLSKey, **options: str) -> str:
    options.setdefault("checker", "true")
    options.setdefault("interval", "PT24H")  # no checker starts by itself during a test
    other = "key_id = " + "AB" * 32 + "\nsecret = AAAA\nchecker = true\ninterval = PT24H\n"
    return client_section("client1", key, SECRET, **options) + "[other.host-2]\n" + other


async def test_objects_names_and_property_types(private_bus: PrivateSystemBus, key: TLSKey) -> None:
    async with served(private_bus, _conf(key)) as (peer, _):
        # Both bus names are owned, by the same connection.
        owners = set()
        for name in dbus_api.BUS_NAMES:
            msg = Message(
                destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus", member="GetNameOwner", signature="s",
                body=[name],
            )  # fmt: skip
            reply = await peer.bus.call(msg)
            assert reply is not None
            assert reply.message_type is MessageType.METHOD_RETURN
            owners.add(reply.body[0])
        assert len(owners) == 1
        (objects,) = await peer.ok("/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
        assert set(objects) == {CLIENT, "/clients/other_host_2"}
        assert list(objects[CLIENT]) == list(dbus_api.CLIENT_OBJECT_INTERFACES)
        for iface in C_IFACES:
            got = {k: v.signature for k, v in objects[CLIENT][iface].items()}
            assert got == {k: t for k, (t, access) in A7_PROPERTIES.items() if access != "write"}
        props = await peer.props()
        assert props["Name"].value == "client1"
        assert props["KeyID"].value == key.key_id
        assert props["ObjectPath"].value == CLIENT
        assert props["Timeout"].value == 300000  # ms
        assert props["LastCheckerStatus"].value == -2
        assert props["LastCheckedOK"].value == ""
        created = datetime.fromisoformat(props["Created"].value)
        assert created.tzinfo is None
        assert abs(created - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=5)
        assert await peer.ok("/", S_IFACES[1], "GetAllClients") == [
            [CLIENT, "/clients/other_host_2"]
        ]
        (with_props,) = await peer.ok("/", S_IFACES[0], "GetAllClientsWithProperties")
        assert with_props[CLIENT]["Name"].value == "client1"
        # Startup: InterfacesAdded from "/" and ClientAdded on both prefixes, per client.
        added = [s for s in peer.named("InterfacesAdded") if s.body[0] == CLIENT]
        assert added[0].path == "/"
        assert {s.interface for s in peer.named("ClientAdded") if s.body == [CLIENT]} == set(
            S_IFACES
        )
        (xml,) = await peer.ok("/clients", "org.freedesktop.DBus.Introspectable", "Introspect")
        assert "client1" in xml
        assert "other_host_2" in xml


async def test_writes_emit_both_change_signals(private_bus: PrivateSystemBus, key: TLSKey) -> None:
    async with served(private_bus, _conf(key)) as (peer, _):
        await peer.set("Interval", Variant("t", 3_600_000))
        assert (await peer.props())["Interval"].value == 3_600_000
        changed = await peer.wait_for(
            lambda s: s.member == "PropertiesChanged" and "Interval" in s.body[1]
        )
        assert changed.body == [C_IFACES[0], {"Interval": Variant("t", 3_600_000)}, []]
        old = [s for s in peer.named("PropertyChanged", CLIENT) if s.body[0] == "Interval"]
        assert {s.interface for s in old} == set(C_IFACES)
        assert old[0].body[1] == Variant("t", 3_600_000)

        await peer.set("Secret", Variant("ay", b"new secret"))
        await peer.wait_for(lambda s: s.member == "PropertiesChanged" and s.body[2] == ["Secret"])
        name, _ = await peer.error(CLIENT, PROPS, "Get", "ss", [C_IFACES[0], "Secret"])
        assert name == "org.freedesktop.DBus.Error.InvalidArgs"
        assert "Secret" not in await peer.props()

        await peer.ok(CLIENT, C_IFACES[1], "Disable")
        assert (await peer.props())["Enabled"].value is False
        assert (await peer.props())["Expires"].value == ""
        await peer.set("Enabled", Variant("b", True))
        props = await peer.props()
        assert props["Enabled"].value is True
        assert props["LastEnabled"].value != ""

        await peer.set("LastCheckedOK", Variant("s", ""))
        assert (await peer.props())["LastCheckedOK"].value != ""
        await peer.ok(CLIENT, C_IFACES[0], "CheckedOK")

        await peer.set("Host", Variant("s", "elsewhere"), path="/clients/other_host_2")
        assert (await peer.props("/clients/other_host_2"))["Host"].value == "elsewhere"


async def test_checker_signals(private_bus: PrivateSystemBus, key: TLSKey) -> None:
    async with served(private_bus, _conf(key, checker="exit 3")) as (peer, _):
        await peer.ok(CLIENT, C_IFACES[0], "StartChecker")
        done = await peer.wait_for(lambda s: s.member == "CheckerCompleted" and s.path == CLIENT)
        assert done.signature == "nxs"
        assert done.body == [3, 3 << 8, "exit 3"]
        started = peer.named("CheckerStarted", CLIENT)
        assert {s.interface for s in started} >= set(C_IFACES)
        assert started[0].body == ["exit 3"]
        await peer.wait_for(lambda s: s.member == "CheckerCompleted" and s.interface == C_IFACES[1])
        assert (await peer.props())["LastCheckerStatus"].value == 3


async def test_approval_signals_and_secret(private_bus: PrivateSystemBus, key: TLSKey) -> None:
    conf = _conf(key, approval_delay="PT30S", approved_by_default="False")
    async with served(private_bus, conf) as (peer, server):
        got = asyncio.create_task(asyncio.to_thread(fetch, server.host, server.port, key))
        need = await peer.wait_for(lambda s: s.member == "NeedApproval")
        assert need.signature == "tb"
        assert need.body == [30000, False]
        props = await peer.props()
        assert props["ApprovalPending"].value is True
        assert props["LastApprovalRequest"].value != ""
        await peer.ok(CLIENT, C_IFACES[0], "Approve", "b", [True])
        assert await got == SECRET
        await peer.wait_for(lambda s: s.member == "GotSecret" and s.interface == C_IFACES[1])

        # An approval stays valid for approval_duration (1 s by default, REFERENCE A19.7).
        await asyncio.sleep(2)
        denied = asyncio.create_task(asyncio.to_thread(fetch, server.host, server.port, key))
        await peer.wait_for(lambda _s: len(peer.named("NeedApproval")) >= 4)
        await peer.ok(CLIENT, C_IFACES[1], "Approve", "b", [False])
        assert await denied is None
        rejected = await peer.wait_for(lambda s: s.member == "Rejected")
        assert rejected.body == ["Denied"]

        stranger = TLSKey(*generate_ed25519_keypair())
        assert await asyncio.to_thread(fetch, server.host, server.port, stranger) is None
        nf = await peer.wait_for(lambda s: s.member == "ClientNotFound")
        assert nf.path == "/"
        assert nf.body[0] == stranger.key_id
        assert nf.body[1].endswith("127.0.0.1")  # "::ffff:127.0.0.1" on a dual-stack socket
        # one signal per interface, sent one after the other: wait for the second too
        await peer.wait_for(lambda _s: len(peer.named("ClientNotFound")) >= len(S_IFACES))
        assert {s.interface for s in peer.named("ClientNotFound")} == set(S_IFACES)


async def test_remove_client(private_bus: PrivateSystemBus, key: TLSKey) -> None:
    async with served(private_bus, _conf(key)) as (peer, server):
        await peer.ok("/", S_IFACES[0], "RemoveClient", "o", [CLIENT])
        removed = await peer.wait_for(lambda s: s.member == "InterfacesRemoved")
        assert removed.path == "/"
        assert removed.body == [CLIENT, list(dbus_api.CLIENT_OBJECT_INTERFACES)]
        await peer.wait_for(lambda s: s.member == "ClientRemoved" and s.interface == S_IFACES[1])
        assert peer.named("ClientRemoved")[0].body == [CLIENT, "client1"]
        (objects,) = await peer.ok("/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")
        assert set(objects) == {"/clients/other_host_2"}
        name, _ = await peer.error(CLIENT, PROPS, "GetAll", "s", [C_IFACES[0]])
        assert name == "org.freedesktop.DBus.Error.UnknownObject"
        assert await asyncio.to_thread(fetch, server.host, server.port, key) is None


async def test_bad_input_is_an_error_and_changes_nothing(
    private_bus: PrivateSystemBus, key: TLSKey
) -> None:
    async with served(private_bus, _conf(key)) as (peer, _):
        before = await peer.props()
        (objects_before,) = await peer.ok("/", "org.freedesktop.DBus.ObjectManager",
                                          "GetManagedObjects")  # fmt: skip
        n_signals = len(peer.signals)
        cases: list[tuple[tuple[Any, ...], str]] = [
            (("/", S_IFACES[0], "RemoveClient", "o", ["/clients/nope"]),
             "org.freedesktop.DBus.Python.KeyError"),
            ((CLIENT, PROPS, "Set", "ssv", [C_IFACES[0], "Timeout", Variant("s", "PT1M")]),
             "org.freedesktop.DBus.Error.InvalidArgs"),
            ((CLIENT, PROPS, "Set", "ssv", [C_IFACES[0], "Enabled", Variant("s", "no")]),
             "org.freedesktop.DBus.Error.InvalidArgs"),
            ((CLIENT, PROPS, "Set", "ssv", [C_IFACES[0], "Timeout", Variant("t", 2**64 - 1)]),
             "org.freedesktop.DBus.Error.InvalidArgs"),
            ((CLIENT, PROPS, "Set", "ssv", [C_IFACES[0], "Interval", Variant("x", -5)]),
             "org.freedesktop.DBus.Error.InvalidArgs"),
            ((CLIENT, PROPS, "Set", "ssv", [C_IFACES[0], "Secret", Variant("s", "text")]),
             "org.freedesktop.DBus.Error.InvalidArgs"),
            ((CLIENT, PROPS, "Set", "ssv", [C_IFACES[0], "Name", Variant("s", "x")]),
             "org.freedesktop.DBus.Error.PropertyReadOnly"),
            ((CLIENT, PROPS, "Set", "ssv", [C_IFACES[0], "Bogus", Variant("s", "x")]),
             "org.freedesktop.DBus.Error.UnknownProperty"),
            ((CLIENT, PROPS, "Get", "ss", ["no.such.Interface", "Name"]),
             "org.freedesktop.DBus.Error.UnknownProperty"),
            ((CLIENT, C_IFACES[0], "Approve", "s", ["yes"]),
             "org.freedesktop.DBus.Error.InvalidArgs"),
            ((CLIENT, C_IFACES[0], "Explode"), "org.freedesktop.DBus.Error.UnknownMethod"),
            (("/clients/nobody", C_IFACES[0], "Enable"),
             "org.freedesktop.DBus.Error.UnknownObject"),
        ]  # fmt: skip
        for args, expected in cases:
            name, text = await peer.error(*args)
            assert name == expected, (args, text)
            assert text
        assert await peer.props() == before
        (objects_after,) = await peer.ok("/", "org.freedesktop.DBus.ObjectManager",
                                         "GetManagedObjects")  # fmt: skip
        assert objects_after == objects_before
        assert len(peer.signals) == n_signals


# -- the policy file on a system-style bus ---------------------------------------------------

_SYSTEM_STYLE = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"""


@contextlib.contextmanager
def system_style_bus() -> Iterator[str]:
    """A dbus-daemon with Debian's default system policy plus our policy file; its address."""
    config = _SYSTEM_STYLE.replace("{policy}", str(POLICY))
    with PrivateSystemBus(config=config) as bus:
        yield bus.address


def _busctl(address: str, *args: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
    prefix = [] if user is None else ["setpriv", f"--reuid={user}", f"--regid={user}",
                                      "--clear-groups"]  # fmt: skip
    return subprocess.run(
        [*prefix, "busctl", f"--address={address}", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_policy_file_is_readable_by_all_and_well_formed() -> None:
    assert POLICY.stat().st_mode & 0o777 == 0o644
    root = _parse(POLICY.read_text())
    owners = {(p.attrib.get("user"), p.attrib.get("group")) for p in root.iter("policy")}
    assert owners == {("root", None), (None, "_mandos")}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own the name and to switch users")
def test_policy_lets_root_own_and_call_but_not_others(key: TLSKey) -> None:
    with system_style_bus() as address:
        env = {"DBUS_SYSTEM_BUS_ADDRESS": address}
        with our_server(_conf(key), use_dbus=True, env=env) as server:
            for _ in range(600):
                listed = _busctl(address, "list", "--acquired")
                if "se.bsnet.fukt.Mandos" in listed.stdout:
                    break
                assert server.process.poll() is None
                time.sleep(0.1)
            assert "se.recompile.Mandos" in listed.stdout
            call = ("call", "se.recompile.Mandos", "/", "se.recompile.Mandos", "GetAllClients")
            as_root = _busctl(address, *call)
            assert as_root.returncode == 0, as_root.stderr
            assert CLIENT in as_root.stdout
            as_nobody = _busctl(address, *call, user=65534)
            assert as_nobody.returncode != 0
            assert "denied" in as_nobody.stderr.lower()
            get = ("get-property", "se.recompile.Mandos", CLIENT, C_IFACES[0], "Enabled")
            assert _busctl(address, *get, user=65534).returncode != 0
            assert _busctl(address, *get).stdout.strip() == "b true"


# -- without D-Bus ---------------------------------------------------------------------------


def test_no_dbus_needs_no_bus(key: TLSKey, tmp_path: Path) -> None:
    nowhere = {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path / 'no-such-socket'}"}
    with our_server(_conf(key), env=nowhere) as server:
        assert fetch(server.host, server.port, key) == SECRET
        assert "D-Bus" not in server.log_text()


def test_unreachable_bus_disables_dbus_and_keeps_serving(key: TLSKey, tmp_path: Path) -> None:
    nowhere = {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path / 'no-such-socket'}"}
    with our_server(_conf(key), use_dbus=True, env=nowhere) as server:
        server.wait_for_log("Disabling D-Bus")
        assert fetch(server.host, server.port, key) == SECRET


class _Target:
    """The server side DBusService talks to, with no clients (only signals are sent here)."""

    registry = None

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def apply(self, effects: list[Any]) -> None:
        pass


async def test_signals_wait_for_a_stalled_bus_and_beyond_the_bound_are_dropped(
    private_bus: PrivateSystemBus, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mandos.adapters import dbus_service
    from mandos.core.effects import Signal

    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", private_bus.address)
    monkeypatch.setattr(dbus_service, "MAX_UNSENT_SIGNALS", 500)
    service = await dbus_service.DBusService.connect(_Target())
    assert private_bus._proc is not None
    daemon = private_bus._proc.pid
    burst = Signal(None, "ClientNotFound", ("AB" * 32, "192.0.2.1"))
    try:
        os.kill(daemon, signal.SIGSTOP)
        try:
            for _ in range(5000):  # ~1.5 MB: far more than the socket buffer holds
                service.signal(burst)
            await asyncio.sleep(0.5)
        finally:
            os.kill(daemon, signal.SIGCONT)
        async with asyncio.timeout(30):
            while service._unsent:  # noqa: ASYNC110 - dbus-fast's write futures, counted
                await asyncio.sleep(0.05)
        assert service._bus.connected
        service.signal(burst)  # still usable after the burst
        dropping = [r for r in caplog.records if "dropping signals" in r.getMessage()]
        assert len(dropping) == 1
        assert not any(r.exc_info for r in caplog.records)
    finally:
        await service.close()
