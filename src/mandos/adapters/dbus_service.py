"""The server's D-Bus API (REFERENCE A7) over dbus-fast: a translator, with no client logic.

Rules of this module:

1. Method calls and property writes become registry commands; their effects are carried out
   by the server (``apply``) and the reply is sent after that, as the reference does.
2. The core's effects become signals: :meth:`DBusService.signal` and
   :meth:`DBusService.properties_changed` are the server's event sink. A client object is
   exported when its ``ClientAdded`` arrives (before the signals announce it) and withdrawn
   after ``ClientRemoved`` (after the signals).
3. One raw message handler answers every call to ``/`` and ``/clients/...`` (introspection
   with annotations, Properties, ObjectManager, both interface prefixes), because dbus-fast's
   own object machinery sends InterfacesAdded from the client's path, where mandos-monitor does
   not listen, and has no annotations. Other calls (``org.freedesktop.DBus.Peer``) fall through.
4. dbus-fast errors are translated here only: connecting or claiming a name fails with
   :class:`BusError`; a bad call gets a D-Bus error reply and changes nothing.
5. The bus never takes the server down, and is never given up. dbus-fast (5.x) takes a full
   socket (``BlockingIOError`` from ``send``) for a dead connection and disconnects: its socket
   is wrapped so that a full buffer means "wait until writable" (:class:`_PatientSocket`).
   Signals not yet written are bounded (``MAX_UNSENT_SIGNALS``); beyond that they are dropped,
   with one log line per episode, so a stopped bus daemon cannot eat the server's memory.
   A lost connection is re-established by :meth:`DBusService.supervise`, names re-claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from dbus_fast import (
    BusType,
    Message,
    MessageFlag,
    MessageType,
    NameFlag,
    RequestNameReply,
    Variant,
)
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError, DBusFastError

from mandos.adapters import dbus_api as api
from mandos.adapters.cause import Cause, caused_by
from mandos.adapters.tasks import TaskOwner
from mandos.core.effects import Effect, PropertiesChanged, Signal
from mandos.core.errors import BusError, ConfigError, LocalProtocolError
from mandos.core.registry import Registry
from mandos.core.values import ClientName

log = logging.getLogger("mandos")

UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"
UNKNOWN_OBJECT = "org.freedesktop.DBus.Error.UnknownObject"
UNKNOWN_PROPERTY = "org.freedesktop.DBus.Error.UnknownProperty"
PROPERTY_READ_ONLY = "org.freedesktop.DBus.Error.PropertyReadOnly"
INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
#: The reference raises KeyError in RemoveClient; dbus-python names that error so.
KEY_ERROR = "org.freedesktop.DBus.Python.KeyError"
_PEER = "org.freedesktop.DBus.Peer"

#: Signals handed to dbus-fast and not yet written before new ones are dropped.
MAX_UNSENT_SIGNALS = 10_000
FIRST_RECONNECT_SECONDS = 0.5
MAX_RECONNECT_SECONDS = 30.0

Command = Callable[[Registry, datetime], list[Effect]]


class CommandTarget(Protocol):
    """What the adapter needs from the server: the registry, its clock, and effect execution."""

    @property
    def registry(self) -> Registry | None: ...

    def now(self) -> datetime:
        """The current time, as the core sees it."""

    async def apply(self, effects: list[Effect]) -> None:
        """Carry out ``effects`` (checkers, signals, state saving)."""


class _PatientSocket:
    """The bus socket as dbus-fast's writer sees it: a full buffer sends nothing, no error.

    dbus-fast then keeps the rest of the message and waits until the socket is writable,
    exactly as it does after a short write.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, data: Any) -> int:
        try:
            return self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0

    def sendmsg(self, buffers: Any, ancdata: Any) -> int:
        try:
            return self._sock.sendmsg(buffers, ancdata)
        except (BlockingIOError, InterruptedError):
            return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _make_patient(bus: MessageBus) -> None:
    writer = getattr(bus, "_writer", None)
    sock = getattr(writer, "sock", None)
    if isinstance(sock, socket.socket):
        writer.sock = _PatientSocket(sock)  # type: ignore[union-attr]
    else:  # another dbus-fast: a burst may then cost the connection, and supervise() restores it
        log.debug("dbus-fast internals changed; bus socket left as it is")


async def _connect_system_bus() -> MessageBus:
    try:
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    except (OSError, DBusFastError, EOFError) as exc:
        raise BusError(f"cannot connect to the system bus: {exc}") from exc
    _make_patient(bus)
    return bus


class DBusService:
    """Owns the bus names and answers for ``/`` and the client objects ``/clients/<name>``."""

    def __init__(self, server: CommandTarget, bus: MessageBus) -> None:
        self._server = server
        self._bus = bus
        self._paths: dict[str, str] = {}  # exported object path -> client name
        self._names: dict[str, str] = {}  # client name -> exported object path
        self._replies = TaskOwner("answering a D-Bus call")
        self._unsent = 0
        self._dropping = False
        self._closing = False
        bus.add_message_handler(self._handle)

    @classmethod
    async def connect(cls, server: CommandTarget) -> DBusService:
        """Connect to the system bus and own both bus names, or raise :class:`BusError`."""
        service = cls(server, await _connect_system_bus())
        try:
            await service._claim_names()
        except BaseException:
            await service.close()
            raise
        return service

    async def _claim_names(self) -> None:
        for name in api.BUS_NAMES:
            try:
                reply = await self._bus.request_name(name, NameFlag.DO_NOT_QUEUE)
            except (OSError, DBusFastError, EOFError) as exc:
                raise BusError(f"cannot own the bus name {name}: {exc}") from exc
            if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
                raise BusError(f"the bus name {name} is taken")

    async def supervise(self) -> None:
        """Run until cancelled: whenever the connection is lost, connect again and re-claim."""
        while True:
            try:
                await self._bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
                reason = "disconnected"
            except Exception as exc:  # the error that ended the connection
                reason = str(exc) or exc.__class__.__name__
            if self._closing:
                return
            log.warning("Lost the D-Bus connection (%s); reconnecting", reason)
            await self._reconnect()
            log.warning("D-Bus connection re-established")

    async def _reconnect(self) -> None:
        """Connect again, with growing pauses, until both names are ours again."""
        self._bus.remove_message_handler(self._handle)
        delay = FIRST_RECONNECT_SECONDS
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RECONNECT_SECONDS)
            try:
                bus = await _connect_system_bus()
            except BusError as exc:
                log.debug("Reconnecting to D-Bus: %s", exc)
                continue
            self._bus, self._unsent = bus, 0
            bus.add_message_handler(self._handle)
            try:
                await self._claim_names()
            except BusError as exc:
                log.debug("Reconnecting to D-Bus: %s", exc)
                bus.remove_message_handler(self._handle)
                bus.disconnect()
                continue
            return

    async def close(self) -> None:
        """Cancel pending replies, then release the names by disconnecting."""
        self._closing = True
        await self._replies.aclose()
        self._bus.remove_message_handler(self._handle)
        self._bus.disconnect()
        with contextlib.suppress(Exception):
            await self._bus.wait_for_disconnect()  # type: ignore[no-untyped-call]

    # -- the event sink: the core's effects become signals ----------------------------------

    def signal(self, effect: Signal) -> None:
        """Emit ``effect`` on both interface prefixes (exporting/withdrawing client objects)."""
        if effect.name is None:
            self._server_signal(effect.member, effect.args)
            return
        path = self._names.get(effect.name)
        member = api.find_member(api.CLIENT_SIGNALS, effect.member)
        if path is None or member is None:
            log.debug("No D-Bus signal %s for client %s", effect.member, effect.name)
            return
        for iface in api.CLIENT_INTERFACES:
            self._emit(path, iface, member.name, member.signature, list(effect.args))

    def properties_changed(self, effect: PropertiesChanged) -> None:
        """PropertyChanged (deprecated, both prefixes), then PropertiesChanged, per property."""
        path = self._names.get(effect.name)
        if path is None:
            return
        for prop, value in effect.changes.items():
            spec = api.PROPERTIES.get(prop)
            if spec is None or not spec.readable:
                continue
            variant = Variant(spec.type, api.to_wire(prop, value))
            for iface in api.CLIENT_INTERFACES:
                self._emit(path, iface, "PropertyChanged", "sv", [prop, variant])
            self._emit(
                path, api.PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as",
                [api.CLIENT_INTERFACE, {prop: variant}, []],
            )  # fmt: skip
        for prop in effect.invalidated:
            self._emit(
                path, api.PROPERTIES_IFACE, "PropertiesChanged", "sa{sv}as",
                [api.CLIENT_INTERFACE, {}, [prop]],
            )  # fmt: skip

    def _server_signal(self, member_name: str, args: tuple[object, ...]) -> None:
        if member_name == "ClientAdded":
            (name,) = args
            assert isinstance(name, str)
            self._client_added(name)
        elif member_name == "ClientRemoved":
            (name,) = args
            assert isinstance(name, str)
            self._client_removed(name)
        elif member_name == "ClientNotFound":
            self._emit_server("ClientNotFound", "ss", [str(a) for a in args])
        else:
            log.debug("No D-Bus signal %s for the server", member_name)

    def _client_added(self, name: str) -> None:
        try:
            path = ClientName(name).dbus_path()
        except ConfigError:
            path = ""
        if not path or path in self._paths or name in self._names:
            log.warning("Client %s cannot be shown on D-Bus (object path taken)", name)
            return
        self._paths[path] = name
        self._names[name] = path
        interfaces = self._object_interfaces(name)
        if interfaces is None:
            return
        self._emit("/", api.OBJECT_MANAGER_IFACE, "InterfacesAdded", "oa{sa{sv}}",
                   [path, interfaces])  # fmt: skip
        self._emit_server("ClientAdded", "o", [path])

    def _client_removed(self, name: str) -> None:
        path = self._names.get(name)
        if path is None:
            return
        self._emit("/", api.OBJECT_MANAGER_IFACE, "InterfacesRemoved", "oas",
                   [path, list(api.CLIENT_OBJECT_INTERFACES)])  # fmt: skip
        self._emit_server("ClientRemoved", "os", [path, name])
        del self._paths[path]
        del self._names[name]

    def _emit_server(self, member: str, signature: str, body: list[Any]) -> None:
        for iface in api.SERVER_INTERFACES:
            self._emit("/", iface, member, signature, body)

    def _emit(self, path: str, iface: str, member: str, signature: str, body: list[Any]) -> None:
        """Hand one signal to dbus-fast, unless the bus is gone or too far behind."""
        if not self._bus.connected:
            return  # supervise() reconnects; GetManagedObjects then tells the whole truth
        if self._unsent >= MAX_UNSENT_SIGNALS:
            if not self._dropping:
                log.warning("D-Bus is not reading; dropping signals until it catches up")
            self._dropping = True
            return
        self._dropping = False
        try:
            sent = self._bus.send(Message.new_signal(path, iface, member, signature, body))
        except Exception as exc:  # a lost bus must never take the server down
            log.warning("Cannot emit D-Bus signal %s.%s: %s", iface, member, exc)
            return
        self._unsent += 1
        sent.add_done_callback(functools.partial(self._written, self._bus))

    def _written(self, bus: MessageBus, sent: asyncio.Future[None]) -> None:
        if bus is self._bus:  # not a connection lost before (its count started afresh)
            self._unsent -= 1
        if not sent.cancelled():
            sent.exception()  # retrieved: a lost connection is supervise()'s business

    # -- values -------------------------------------------------------------------------------

    def _registry(self) -> Registry:
        registry = self._server.registry
        if registry is None:
            raise DBusError(UNKNOWN_OBJECT, "the server has no clients yet")
        return registry

    def _properties(self, name: str) -> dict[str, Variant]:
        """Every readable property of client ``name`` as variants (GetAll)."""
        try:
            values = self._registry().snapshot(name)
        except LocalProtocolError as exc:
            raise DBusError(UNKNOWN_OBJECT, str(exc)) from None
        return {
            prop: Variant(spec.type, api.to_wire(prop, values[prop]))
            for prop, spec in api.PROPERTIES.items()
            if spec.readable
        }

    def _object_interfaces(self, name: str) -> dict[str, dict[str, Variant]] | None:
        try:
            props = self._properties(name)
        except DBusError:
            return None
        return {
            iface: (props if iface in api.CLIENT_INTERFACES else {})
            for iface in api.CLIENT_OBJECT_INTERFACES
        }

    # -- incoming calls -----------------------------------------------------------------------

    def _handle(self, msg: Message) -> Message | bool | None:
        """Answer a method call to one of our objects; None leaves it to dbus-fast."""
        if msg.message_type is not MessageType.METHOD_CALL or msg.interface == _PEER:
            return None
        path = msg.path or ""
        if path == "/":
            return self._call_server(msg)
        if path in self._paths:
            return self._call_client(msg, self._paths[path])
        if path == "/clients" or path.startswith("/clients/"):
            if _is(msg, api.INTROSPECTABLE_IFACE, "Introspect", ""):
                children = self._children(path)
                if children or path == "/clients":
                    return _reply(msg, "s", [api.plain_introspection(path, children)])
            raise DBusError(UNKNOWN_OBJECT, f"no object at {path}")
        return None

    def _children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return sorted({p[len(prefix) :].split("/")[0] for p in self._paths if p.startswith(prefix)})

    def _call_server(self, msg: Message) -> Message | bool:
        if _is(msg, api.INTROSPECTABLE_IFACE, "Introspect", ""):
            return _reply(msg, "s", [api.server_introspection(self._children("/"))])
        if _is(msg, api.OBJECT_MANAGER_IFACE, "GetManagedObjects", ""):
            objects = {path: self._object_interfaces(name) for path, name in self._paths.items()}
            body = {path: ifaces for path, ifaces in objects.items() if ifaces is not None}
            return _reply(msg, "a{oa{sa{sv}}}", [body])
        if msg.interface == api.EXTENSION_INTERFACE:
            return self._call_extension(msg)
        member = _own_member(msg, api.SERVER_INTERFACES, api.SERVER_METHODS)
        if member.name == "GetAllClients":
            return _reply(msg, "ao", [list(self._paths)])
        if member.name == "GetAllClientsWithProperties":
            clients = {path: self._properties(name) for path, name in self._paths.items()}
            return _reply(msg, "a{oa{sv}}", [clients])
        # RemoveClient
        (path,) = msg.body
        name = self._paths.get(path)
        if name is None:
            raise DBusError(KEY_ERROR, f"no client at {path}")
        return self._command(msg, lambda reg, now: reg.remove(name, now))

    def _call_extension(self, msg: Message) -> Message:
        """Our own members on ``/`` (UnknownKeys, Explain): read-only views of the observer."""
        member = _own_member(msg, (api.EXTENSION_INTERFACE,), api.EXTENSION_METHODS)
        observer = getattr(self._server, "observer", None)
        if observer is None:
            raise DBusError(UNKNOWN_METHOD, "this server keeps no observations")
        if member.name == "UnknownKeys":
            rows = [
                [k.key_id, k.address, api.date_to_wire(k.first_seen),
                 api.date_to_wire(k.last_seen), k.count]
                for k in observer.unknown_keys()
            ]  # fmt: skip
            return _reply(msg, "a(ssssu)", [rows])
        (name,) = msg.body
        try:
            found = observer.explain(name)
        except LocalProtocolError as exc:
            raise DBusError(UNKNOWN_OBJECT, str(exc)) from None
        return _reply(msg, "(sas)", [[found.verdict, list(found.reasons)]])

    def _call_client(self, msg: Message, name: str) -> Message | bool:
        if _is(msg, api.INTROSPECTABLE_IFACE, "Introspect", ""):
            return _reply(msg, "s", [api.client_introspection(self._names[name])])
        if msg.interface == api.PROPERTIES_IFACE:
            return self._call_properties(msg, name)
        member = _own_member(msg, api.CLIENT_INTERFACES, api.CLIENT_METHODS)
        commands: dict[str, Command] = {
            "CheckedOK": lambda reg, now: reg.checked_ok(name, now),
            "Enable": lambda reg, now: reg.enable(name, now),
            "Disable": lambda reg, now: reg.disable(name, now),
            "StartChecker": lambda reg, now: reg.start_checker(name, now),
            "StopChecker": lambda reg, now: reg.stop_checker(name, now),
        }
        if member.name == "Approve":
            (approved,) = msg.body
            return self._command(msg, lambda reg, now: reg.approve(name, bool(approved), now))
        return self._command(msg, commands[member.name])

    def _call_properties(self, msg: Message, name: str) -> Message | bool:
        expected = {"Get": "ss", "Set": "ssv", "GetAll": "s"}.get(msg.member or "")
        if expected is None:
            raise DBusError(UNKNOWN_METHOD, f"no method {msg.member} in {msg.interface}")
        if msg.signature != expected:
            raise DBusError(INVALID_ARGS, f"{msg.member} takes ({expected}), not ({msg.signature})")
        iface = msg.body[0]
        if msg.member == "GetAll":
            props = self._properties(name) if iface in ("", *api.CLIENT_INTERFACES) else {}
            return _reply(msg, "a{sv}", [props])
        prop = msg.body[1]
        spec = api.PROPERTIES.get(prop)
        if iface not in api.CLIENT_INTERFACES or spec is None:
            raise DBusError(UNKNOWN_PROPERTY, f"no property {iface}.{prop}")
        if msg.member == "Get":
            if not spec.readable:
                raise DBusError(INVALID_ARGS, f"property {prop} is write-only")
            return _reply(msg, "v", [self._properties(name)[prop]])
        if not spec.writable:
            raise DBusError(PROPERTY_READ_ONLY, f"property {prop} is read-only")
        variant = msg.body[2]
        assert isinstance(variant, Variant)
        try:
            value = api.from_wire(prop, variant.signature, variant.value)
        except LocalProtocolError as exc:
            raise DBusError(INVALID_ARGS, str(exc)) from None
        return self._command(msg, lambda reg, now: reg.set_property(name, prop, value, now))

    def _command(self, msg: Message, command: Command) -> bool:
        """Run ``command`` on the core now; reply once its effects are carried out."""
        try:
            effects = command(self._registry(), self._server.now())
        except LocalProtocolError as exc:
            raise DBusError(INVALID_ARGS, str(exc)) from None
        self._replies.start(self._finish(msg, effects))
        return True

    async def _finish(self, msg: Message, effects: list[Effect]) -> None:
        try:
            call = msg.member or ""
            if msg.member == "Set" and msg.body:
                call = f"Set {msg.body[1]}"
            elif msg.member == "Approve" and msg.body:
                call = "Approve" if msg.body[0] else "Approve(deny)"
            with caused_by(Cause("dbus", await self._caller_uid(msg.sender), call)):
                await self._server.apply(effects)
        finally:
            if not msg.flags & MessageFlag.NO_REPLY_EXPECTED:
                with contextlib.suppress(Exception):
                    self._bus.send(Message.new_method_return(msg))

    async def _caller_uid(self, sender: str | None) -> int | None:
        """The Unix uid of the caller, for the audit trail (None if the bus will not say)."""
        if not sender:
            return None
        query = Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="GetConnectionUnixUser",
            signature="s",
            body=[sender],
        )
        with contextlib.suppress(Exception):
            reply = await self._bus.call(query)
            if reply.message_type is MessageType.METHOD_RETURN:
                return int(reply.body[0])
        return None


def _is(msg: Message, iface: str, member: str, signature: str) -> bool:
    return msg.interface in (iface, None) and msg.member == member and msg.signature == signature


def _own_member(
    msg: Message, interfaces: tuple[str, ...], members: tuple[api.Member, ...]
) -> api.Member:
    """The method ``msg`` calls on one of ``interfaces``, its signature checked."""
    member = api.find_member(members, msg.member or "")
    if member is None or (msg.interface is not None and msg.interface not in interfaces):
        raise DBusError(UNKNOWN_METHOD, f"no method {msg.interface}.{msg.member} here")
    if msg.signature != member.signature:
        raise DBusError(
            INVALID_ARGS, f"{member.name} takes ({member.signature}), not ({msg.signature})"
        )
    return member


def _reply(msg: Message, signature: str, body: list[Any]) -> Message:
    return Message.new_method_return(msg, signature, body)
