"""The D-Bus API of the server as data (REFERENCE A7): names, members, types, annotations.

Rules of this module:

1. Pure: no bus, no event loop, no dbus_fast. Everything here is a table or a function of its
   arguments, so the whole API can be checked without a bus.
2. Values cross the boundary here and only here: the core speaks ``timedelta``, aware-UTC
   ``datetime | None``, ``bool``, ``int``, ``str``, ``bytes``; the bus speaks ``t`` milliseconds,
   naive-UTC ``isoformat()`` strings (``""`` when unset), ``b``, ``n``, ``s``, ``o``, ``ay``.
3. Every interface exists twice: under ``se.recompile.Mandos`` and, deprecated, under the old
   prefix ``se.bsnet.fukt.Mandos``. Members and signals are the same on both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final
from xml.sax.saxutils import quoteattr

from mandos.core.errors import LocalProtocolError
from mandos.core.properties import CLIENT_PROPERTIES, ClientProperty, Kind

BUS_NAMES: Final = ("se.recompile.Mandos", "se.bsnet.fukt.Mandos")
SERVER_INTERFACE: Final = "se.recompile.Mandos"
SERVER_INTERFACES: Final = ("se.recompile.Mandos", "se.bsnet.fukt.Mandos")
CLIENT_INTERFACE: Final = "se.recompile.Mandos.Client"
CLIENT_INTERFACES: Final = ("se.recompile.Mandos.Client", "se.bsnet.fukt.Mandos.Client")
DEPRECATED_INTERFACES: Final = frozenset({"se.bsnet.fukt.Mandos", "se.bsnet.fukt.Mandos.Client"})
#: Our own interface on ``/``, beside the reference's (which stays exactly as it was), so that
#: Debian's mandos-ctl and mandos-monitor never see a member they do not know.
EXTENSION_INTERFACE: Final = "org.mandos_py.Server1"

PROPERTIES_IFACE: Final = "org.freedesktop.DBus.Properties"
INTROSPECTABLE_IFACE: Final = "org.freedesktop.DBus.Introspectable"
OBJECT_MANAGER_IFACE: Final = "org.freedesktop.DBus.ObjectManager"
#: What GetManagedObjects and InterfacesAdded/Removed list for a client, in the reference's order.
CLIENT_OBJECT_INTERFACES: Final = (PROPERTIES_IFACE, *CLIENT_INTERFACES, INTROSPECTABLE_IFACE)

DEPRECATED: Final = {"org.freedesktop.DBus.Deprecated": "true"}
_CONST: Final = {"org.freedesktop.DBus.Property.EmitsChangedSignal": "const"}
_MS: Final = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Member:
    """A method or signal: ``args`` are (name, type) pairs (a method's are its inputs)."""

    name: str
    args: tuple[tuple[str, str], ...] = ()
    out: str = ""  # a method's output signature; "" for none
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def signature(self) -> str:
        """The input (method) or body (signal) signature."""
        return "".join(t for _, t in self.args)


@dataclass(frozen=True, slots=True)
class Property:
    """A client property: D-Bus type, access ("read", "write", "readwrite"), annotations."""

    type: str
    access: str
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def readable(self) -> bool:
        """Get and GetAll show it."""
        return self.access != "write"

    @property
    def writable(self) -> bool:
        """Set accepts it."""
        return self.access != "read"


SERVER_SIGNALS: Final = (
    Member("ClientAdded", (("objpath", "o"),)),
    Member("ClientNotFound", (("key_id", "s"), ("address", "s"))),
    Member("ClientRemoved", (("objpath", "o"), ("name", "s")), annotations=DEPRECATED),
)
SERVER_METHODS: Final = (
    Member("GetAllClients", out="ao", annotations=DEPRECATED),
    Member("GetAllClientsWithProperties", out="a{oa{sv}}", annotations=DEPRECATED),
    Member("RemoveClient", (("object_path", "o"),)),
)
EXTENSION_METHODS: Final = (
    # (key ID, last address, first seen, last seen, count), the most recently seen first
    Member("UnknownKeys", out="a(ssssu)"),
    # (verdict "yes" | "after approval" | "no", reasons in words)
    Member("Explain", (("name", "s"),), out="(sas)"),
)
CLIENT_SIGNALS: Final = (
    Member("CheckerCompleted", (("exitcode", "n"), ("waitstatus", "x"), ("command", "s"))),
    Member("CheckerStarted", (("command", "s"),)),
    Member("PropertyChanged", (("property", "s"), ("value", "v")), annotations=DEPRECATED),
    Member("GotSecret"),
    Member("Rejected", (("reason", "s"),)),
    Member("NeedApproval", (("timeout", "t"), ("default", "b"))),
)
CLIENT_METHODS: Final = (
    Member("Approve", (("value", "b"),)),
    Member("CheckedOK"),
    Member("Enable", annotations=DEPRECATED),
    Member("StartChecker", annotations=DEPRECATED),
    Member("Disable", annotations=DEPRECATED),
    Member("StopChecker", annotations=DEPRECATED),
)
#: The D-Bus signature of each kind of core value (REFERENCE A7).
SIGNATURES: Final[dict[Kind, str]] = {
    Kind.DURATION: "t",
    Kind.FLAG: "b",
    Kind.NUMBER: "n",
    Kind.TEXT: "s",
    Kind.DATE: "s",
    Kind.PATH: "o",
    Kind.SECRET: "ay",
}
#: Properties kept only for old clients of the API.
_DEPRECATED_PROPERTIES: Final = frozenset({"ObjectPath"})


def _property(name: str, spec: ClientProperty) -> Property:
    """The D-Bus view of a core property: signature, access and annotations."""
    access = {(True, True): "readwrite", (True, False): "read", (False, True): "write"}
    annotations = dict(_CONST) if spec.constant else {}
    if not spec.readable:  # a write-only value is never sent: changes only invalidate it
        annotations["org.freedesktop.DBus.Property.EmitsChangedSignal"] = "invalidates"
    if name in _DEPRECATED_PROPERTIES:
        annotations.update(DEPRECATED)
    return Property(SIGNATURES[spec.kind], access[spec.readable, spec.writable], annotations)


#: Every client property, in the order the reference introspects them (names and kinds from
#: :data:`mandos.core.properties.CLIENT_PROPERTIES`, the one list of them).
PROPERTIES: Final[dict[str, Property]] = {
    name: _property(name, spec) for name, spec in CLIENT_PROPERTIES.items()
}


def find_member(members: tuple[Member, ...], name: str) -> Member | None:
    """The member called ``name``, or None."""
    return next((m for m in members if m.name == name), None)


# -- values ---------------------------------------------------------------------------------


def date_to_wire(when: datetime | None) -> str:
    """Naive-UTC ``isoformat()`` (no zone, no ``.000000``), or ``""`` (REFERENCE A7, A19.9)."""
    if when is None:
        return ""
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.isoformat()


def to_wire(prop: str, value: object) -> object:
    """The bus value of readable property ``prop`` given its core value."""
    kind = PROPERTIES[prop].type
    if kind == "t":
        assert isinstance(value, timedelta)
        return max(0, value // _MS)
    if kind == "s" and (value is None or isinstance(value, datetime)):
        return date_to_wire(value)
    if kind in ("b", "n"):
        assert isinstance(value, bool | int)
        return bool(value) if kind == "b" else int(value)
    return str(value)


#: Integer types a duration may be written as: dbus-python (so mandos-ctl) sends ``i``.
_INTEGERS: Final = frozenset("ynqiuxt")


def from_wire(prop: str, signature: str, value: object) -> object:
    """The core value for writing ``prop``; LocalProtocolError when the D-Bus type is wrong.

    As in the reference, a duration accepts any integer type (not only ``t``), and any write
    to ``LastCheckedOK`` counts as a successful check whatever its type.
    """
    spec = PROPERTIES.get(prop)
    if spec is None or not spec.writable:
        raise LocalProtocolError(f"property {prop!r} is not writable")
    if prop == "LastCheckedOK":
        return ""
    if spec.type == "t" and signature in _INTEGERS:
        assert isinstance(value, int)
        if value < 0:
            raise LocalProtocolError(f"property {prop!r} cannot be negative")
        try:
            return timedelta(milliseconds=value)
        except OverflowError:
            raise LocalProtocolError(f"property {prop!r}: {value} ms is out of range") from None
    if signature != spec.type:
        raise LocalProtocolError(f"property {prop!r} has type {spec.type!r}, not {signature!r}")
    if spec.type == "ay":
        assert isinstance(value, bytes | bytearray)
        return bytes(value)
    return value


# -- introspection --------------------------------------------------------------------------

_DOCTYPE: Final = (
    '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\n'
    ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n'
)
_STANDARD: Final = {
    INTROSPECTABLE_IFACE: (
        (Member("Introspect", out="s"),),
        (),
    ),
    PROPERTIES_IFACE: (
        (
            Member("Get", (("interface_name", "s"), ("property_name", "s")), out="v"),
            Member("Set", (("interface_name", "s"), ("property_name", "s"), ("value", "v"))),
            Member("GetAll", (("interface_name", "s"),), out="a{sv}"),
        ),
        (
            Member(
                "PropertiesChanged",
                (
                    ("interface_name", "s"),
                    ("changed_properties", "a{sv}"),
                    ("invalidated_properties", "as"),
                ),
            ),
        ),
    ),
    OBJECT_MANAGER_IFACE: (
        (Member("GetManagedObjects", out="a{oa{sa{sv}}}"),),
        (
            Member(
                "InterfacesAdded",
                (("object_path", "o"), ("interfaces_and_properties", "a{sa{sv}}")),
            ),
            Member("InterfacesRemoved", (("object_path", "o"), ("interfaces", "as"))),
        ),
    ),
}
_OUT_NAMES: Final = {
    "Introspect": "xml_data",
    "Get": "value",
    "GetAll": "props",
    "GetManagedObjects": "objpath_interfaces_and_properties",
}


def _annotations(annotations: dict[str, str], indent: str) -> list[str]:
    return [
        f"{indent}<annotation name={quoteattr(k)} value={quoteattr(v)}/>"
        for k, v in annotations.items()
    ]


def _member_xml(kind: str, member: Member) -> list[str]:
    lines = [f"    <{kind} name={quoteattr(member.name)}>"]
    direction = ' direction="in"' if kind == "method" else ""
    for name, typ in member.args:
        lines.append(f"      <arg{direction} type={quoteattr(typ)} name={quoteattr(name)}/>")
    if member.out:
        out_name = _OUT_NAMES.get(member.name)
        named = f" name={quoteattr(out_name)}" if out_name else ""
        lines.append(f'      <arg direction="out" type={quoteattr(member.out)}{named}/>')
    lines += _annotations(member.annotations, "      ")
    lines.append(f"    </{kind}>")
    return lines


def _interface_xml(
    name: str,
    methods: tuple[Member, ...],
    signals: tuple[Member, ...],
    properties: dict[str, Property] | None = None,
) -> list[str]:
    lines = [f"  <interface name={quoteattr(name)}>"]
    for method in methods:
        lines += _member_xml("method", method)
    for sig in signals:
        lines += _member_xml("signal", sig)
    for prop_name, prop in (properties or {}).items():
        head = (
            f"    <property name={quoteattr(prop_name)} type={quoteattr(prop.type)}"
            f" access={quoteattr(prop.access)}"
        )
        if prop.annotations:
            lines.append(head + ">")
            lines += _annotations(prop.annotations, "      ")
            lines.append("    </property>")
        else:
            lines.append(head + "/>")
    if name in DEPRECATED_INTERFACES:
        lines += _annotations(DEPRECATED, "    ")
    lines.append("  </interface>")
    return lines


def _standard_xml(*names: str) -> list[str]:
    lines: list[str] = []
    for name in names:
        methods, signals = _STANDARD[name]
        lines += _interface_xml(name, methods, signals)
    return lines


def _node(path: str, body: list[str], children: list[str]) -> str:
    lines = [f"<node name={quoteattr(path)}>", *body]
    lines += [f"  <node name={quoteattr(child)}/>" for child in children]
    lines.append("</node>")
    return _DOCTYPE + "\n".join(lines) + "\n"


def server_introspection(children: list[str]) -> str:
    """Introspection XML of ``/`` (children: its child nodes, e.g. ``["clients"]``)."""
    body = _standard_xml(INTROSPECTABLE_IFACE, OBJECT_MANAGER_IFACE)
    for iface in SERVER_INTERFACES:
        body += _interface_xml(iface, SERVER_METHODS, SERVER_SIGNALS)
    body += _interface_xml(EXTENSION_INTERFACE, EXTENSION_METHODS, ())
    return _node("/", body, children)


def client_introspection(path: str) -> str:
    """Introspection XML of a client object at ``path``."""
    body = _standard_xml(INTROSPECTABLE_IFACE, PROPERTIES_IFACE)
    for iface in CLIENT_INTERFACES:
        body += _interface_xml(iface, CLIENT_METHODS, CLIENT_SIGNALS, PROPERTIES)
    return _node(path, body, [])


def plain_introspection(path: str, children: list[str]) -> str:
    """Introspection XML of an inner node (such as ``/clients``) with only child nodes."""
    return _node(path, _standard_xml(INTROSPECTABLE_IFACE), children)


#: The server's object path; its clients are at ``/clients/<name>``.
SERVER_PATH: Final = "/"
