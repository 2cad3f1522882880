"""The Mandos server's D-Bus API as seen by its clients (mandos-ctl, mandos-monitor), via dbus-fast.

Rules of this module:
- The API's names come from ``dbus_api`` (the one place they are written down).
- It speaks only the current names: bus name ``se.recompile.Mandos`` on the system bus (found
  through ``DBUS_SYSTEM_BUS_ADDRESS`` when set), the server at ``/``, clients at
  ``/clients/<name>``, interfaces ``se.recompile.Mandos[.Client]``. The server emits every
  signal on the deprecated ``se.bsnet.fukt`` interfaces too; those copies are ignored.
- dbus-fast's exceptions are translated here, once, into ``ServerUnreachable`` and
  ``ServerCallFailed`` (both ``BusError``).
- Values come out plain (variants unwrapped): ``bool``, ``int``, ``str``, ``bytes``.
- ``debug`` receives one line per call, in the reference's ``--debug`` words; a secret's bytes
  are never in it (only their count).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Final

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from mandos.adapters.dbus_api import (
    BUS_NAMES,
    CLIENT_INTERFACE,
    OBJECT_MANAGER_IFACE,
    PROPERTIES,
    PROPERTIES_IFACE,
    SERVER_INTERFACE,
    SERVER_PATH,
)
from mandos.core.errors import ServerCallFailed, ServerUnreachable

__all__ = ["MandosBus", "Properties", "SignalHandler"]

BUS_NAME: Final = BUS_NAMES[0]  # the current name; the deprecated one is never spoken
_NOT_RUNNING: Final = frozenset(
    {"org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"}
)
# Signals worth hearing (the monitor): per interface, and only from these interfaces.
_MATCH_RULES: Final = (
    f"type='signal',interface='{CLIENT_INTERFACE}'",
    f"type='signal',interface='{SERVER_INTERFACE}'",
    f"type='signal',interface='{OBJECT_MANAGER_IFACE}',path='{SERVER_PATH}'",
    f"type='signal',interface='{PROPERTIES_IFACE}',member='PropertiesChanged',arg0='{CLIENT_INTERFACE}'",
)
_HEARD: Final = (CLIENT_INTERFACE, SERVER_INTERFACE, OBJECT_MANAGER_IFACE, PROPERTIES_IFACE)

Properties = dict[str, Any]
SignalHandler = Callable[[str, str, str, list[Any]], None]
"""Called with (object path, interface, member, body with variants unwrapped)."""


def unwrap(value: Any) -> Any:
    """A D-Bus value with its variants replaced by their contents, recursively."""
    if isinstance(value, Variant):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {unwrap(k): unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def _debug_repr(value: object) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"  # a secret: never its content
    return repr(value)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """dbus-fast's failures as BusError subclasses (the one place they are translated)."""
    try:
        yield
    except DBusError as exc:
        if exc.type in _NOT_RUNNING:
            raise ServerUnreachable(exc.text) from None
        raise ServerCallFailed(f"{exc.type}: {exc.text}") from None
    except (OSError, EOFError) as exc:
        raise ServerUnreachable(str(exc) or type(exc).__name__) from None


class MandosBus:
    """A connection to the system bus, talking to the Mandos server."""

    def __init__(self, bus: MessageBus, debug: Callable[[str], None] | None = None) -> None:
        self._bus = bus
        self._debug = debug
        self._seen_paths: set[str] = set()
        self._handlers: list[SignalHandler] = []

    @classmethod
    async def connect(cls, debug: Callable[[str], None] | None = None) -> MandosBus:
        """Connect to the system bus.

        Raises:
            ServerUnreachable: the bus cannot be reached.
        """
        with _translated():
            bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        return cls(bus, debug)

    def close(self) -> None:
        """Disconnect from the bus."""
        self._bus.disconnect()

    @property
    def connected(self) -> bool:
        """Whether the connection to the bus is still open."""
        return bool(self._bus.connected)

    async def _call(
        self,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: list[Any] | None = None,
    ) -> list[Any]:
        args = body or []
        if self._debug is not None:
            if path not in self._seen_paths:
                self._seen_paths.add(path)
                self._debug(f"D-Bus: Connect to: (busname={BUS_NAME!r}, path={path!r})")
            shown = ", ".join(_debug_repr(unwrap(a)) for a in args)
            self._debug(f"D-Bus: {BUS_NAME}:{path}:{interface}.{member}({shown})")
        msg = Message(
            destination=BUS_NAME,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=args,
        )
        with _translated():
            reply = await self._bus.call(msg)
        if reply.message_type is MessageType.ERROR:
            with _translated():
                raise DBusError._from_message(reply)
        return [unwrap(v) for v in reply.body]

    async def clients(self) -> dict[str, Properties]:
        """Every client: its object path -> its se.recompile.Mandos.Client properties.

        Raises:
            ServerUnreachable: no Mandos server on the bus.
            ServerCallFailed: the server refused.
        """
        (objects,) = await self._call(SERVER_PATH, OBJECT_MANAGER_IFACE, "GetManagedObjects")
        return {
            path: dict(interfaces[CLIENT_INTERFACE])
            for path, interfaces in objects.items()
            if CLIENT_INTERFACE in interfaces
        }

    async def set_property(self, path: str, name: str, value: object) -> None:
        """Set a client property; its D-Bus type (b, s, t or ay) is the API's (``PROPERTIES``)."""
        variant = Variant(PROPERTIES[name].type, value)
        await self._call(path, PROPERTIES_IFACE, "Set", "ssv", [CLIENT_INTERFACE, name, variant])

    async def approve(self, path: str, approve: bool) -> None:
        """Approve (or deny) the client's current or next request."""
        await self._call(path, CLIENT_INTERFACE, "Approve", "b", [approve])

    async def checked_ok(self, path: str) -> None:
        """Tell the server the client's check succeeded (bumps its timeout)."""
        await self._call(path, CLIENT_INTERFACE, "CheckedOK")

    async def remove_client(self, path: str) -> None:
        """Ask the server to forget the client."""
        await self._call(SERVER_PATH, SERVER_INTERFACE, "RemoveClient", "o", [path])

    async def subscribe(self, handler: SignalHandler) -> None:
        """Have ``handler`` called for each Mandos signal (clients, server, ObjectManager)."""
        if not self._handlers:
            self._bus.add_message_handler(self._on_message)
            for rule in _MATCH_RULES:
                with _translated():
                    await self._bus.call(
                        Message(
                            destination="org.freedesktop.DBus",
                            path="/org/freedesktop/DBus",
                            interface="org.freedesktop.DBus",
                            member="AddMatch",
                            signature="s",
                            body=[rule],
                        )
                    )
        self._handlers.append(handler)

    def _on_message(self, msg: Message) -> None:
        if msg.message_type is not MessageType.SIGNAL:
            return
        interface, path, member = msg.interface or "", msg.path or "", msg.member or ""
        if interface == PROPERTIES_IFACE and (not msg.body or msg.body[0] != CLIENT_INTERFACE):
            return
        if interface not in (
            CLIENT_INTERFACE,
            SERVER_INTERFACE,
            OBJECT_MANAGER_IFACE,
            PROPERTIES_IFACE,
        ):
            return
        body = [unwrap(v) for v in msg.body]
        for handler in list(self._handlers):
            handler(path, interface, member, body)
