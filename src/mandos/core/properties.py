"""Every client property of REFERENCE A7, listed once: its value's kind, how it is read and
what a write does.

Rules of this module:

1. This table is the only list of the property names. ``ClientState.properties()`` reads
   through it, ``Registry.set_property`` writes through it, and the D-Bus adapter
   (``mandos.adapters.dbus_api``) derives its property table (signatures, access,
   annotations) from it; the order is the reference's introspection order.
2. Values are core values (:class:`Kind`): ``timedelta``, ``bool``, ``int``, ``str``, aware
   ``datetime`` (None while unset), :class:`Secret`. Turning them into bus values, and bus
   values into them, is the adapter's job.
3. A writable property either replaces one :class:`ClientConfig` field (``setting``) or is a
   command (``Enabled``, ``CheckerRunning``, ``LastCheckedOK``), which the registry runs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final

from mandos.core.values import ClientName, Secret

if TYPE_CHECKING:
    from mandos.core.client_state import ClientState


class Kind(enum.Enum):
    """The type of a property's value in the core."""

    DURATION = enum.auto()  # timedelta
    FLAG = enum.auto()  # bool
    NUMBER = enum.auto()  # int
    TEXT = enum.auto()  # str
    DATE = enum.auto()  # aware datetime, or None while unset
    PATH = enum.auto()  # str naming a D-Bus object
    SECRET = enum.auto()  # Secret

    @property
    def python_type(self) -> type:
        """The Python type a value of this kind has (None aside, for dates)."""
        return _PYTHON_TYPES[self]


_PYTHON_TYPES: Final[dict[Kind, type]] = {
    Kind.DURATION: timedelta,
    Kind.FLAG: bool,
    Kind.NUMBER: int,
    Kind.TEXT: str,
    Kind.DATE: datetime,
    Kind.PATH: str,
    Kind.SECRET: Secret,
}


@dataclass(frozen=True, slots=True)
class ClientProperty:
    """One property: ``read`` is None when write-only; a write sets ``setting`` or is a command.

    A readable property's value is ``shown`` (or the identity) applied to the client state's
    attribute ``source`` (a dotted path), which is what ``read`` does.
    """

    kind: Kind
    read: Callable[[ClientState], object] | None
    setting: str | None = None
    command: bool = False
    constant: bool = False  # never changes while the client exists
    source: str = ""
    shown: Callable[[Any], object] | None = None

    @property
    def readable(self) -> bool:
        """Get and GetAll show it."""
        return self.read is not None

    @property
    def writable(self) -> bool:
        """Set accepts it."""
        return self.setting is not None or self.command


def _read(
    kind: Kind,
    source: str,
    shown: Callable[[Any], object] | None = None,
    *,
    command: bool = False,
    constant: bool = False,
) -> ClientProperty:
    """A readable property: ``shown`` of the state's attribute ``source``."""
    get = attrgetter(source)
    read = get if shown is None else lambda state: shown(get(state))
    return ClientProperty(
        kind, read, command=command, constant=constant, source=source, shown=shown
    )


def _setting(field: str, kind: Kind, *, readable: bool = True) -> ClientProperty:
    if not readable:
        return ClientProperty(kind, None, setting=field)
    source = f"config.{field}"
    return ClientProperty(kind, attrgetter(source), setting=field, source=source)


def _hex(value: object) -> str:
    return "" if value is None else str(value)


def _pending(count: int) -> bool:
    return count > 0


def _dbus_path(name: ClientName) -> str:
    return name.dbus_path()


#: Every client property, in the order the reference introspects them.
CLIENT_PROPERTIES: Final[dict[str, ClientProperty]] = {
    "ApprovalDelay": _setting("approval_delay", Kind.DURATION),
    "ApprovalDuration": _setting("approval_duration", Kind.DURATION),
    "ApprovalPending": _read(Kind.FLAG, "approvals_pending", _pending),
    "ApprovedByDefault": _setting("approved_by_default", Kind.FLAG),
    "CheckerRunning": _read(Kind.FLAG, "checker_running", command=True),
    "Checker": _setting("checker", Kind.TEXT),
    "Created": _read(Kind.DATE, "created", constant=True),
    "Enabled": _read(Kind.FLAG, "enabled", command=True),
    "Expires": _read(Kind.DATE, "expires"),
    "ExtendedTimeout": _setting("extended_timeout", Kind.DURATION),
    "Fingerprint": _read(Kind.TEXT, "config.fingerprint", _hex, constant=True),
    "Host": _setting("host", Kind.TEXT),
    "Interval": _setting("interval", Kind.DURATION),
    "KeyID": _read(Kind.TEXT, "config.key_id", _hex, constant=True),
    "LastApprovalRequest": _read(Kind.DATE, "last_approval_request"),
    "LastCheckedOK": _read(Kind.DATE, "last_checked_ok", command=True),
    "LastCheckerStatus": _read(Kind.NUMBER, "last_checker_status"),
    "LastEnabled": _read(Kind.DATE, "last_enabled"),
    "Name": _read(Kind.TEXT, "name", constant=True),
    "ObjectPath": _read(Kind.PATH, "config.name", _dbus_path, constant=True),
    "Secret": _setting("secret", Kind.SECRET, readable=False),
    "Timeout": _setting("timeout", Kind.DURATION),
}


def read_all(state: ClientState) -> dict[str, object]:
    """Every readable property of ``state``, as core values."""
    return {name: p.read(state) for name, p in CLIENT_PROPERTIES.items() if p.read is not None}


#: Read once when a client is made and never again changed by anything (KeyID and Fingerprint
#: are ``constant`` on the bus, yet a reload of clients.conf may change them).
_FIXED: Final = frozenset({"Created", "Name", "ObjectPath"})
#: The readable properties that a command may change: name, and how the value is shown.
_VARYING: Final = tuple(
    (name, p.shown)
    for name, p in CLIENT_PROPERTIES.items()
    if p.read is not None and name not in _FIXED
)
#: Their sources, read in one call (a request diffs them twice: this is per connection).
_READ_SOURCES: Final = attrgetter(
    *(
        p.source
        for name, p in CLIENT_PROPERTIES.items()
        if p.read is not None and name not in _FIXED
    )
)


def read_varying(state: ClientState) -> tuple[object, ...]:
    """What the properties a command may change are shown from, in :data:`_VARYING`'s order."""
    values: tuple[object, ...] = _READ_SOURCES(state)
    return values


def varying_changes(before: tuple[object, ...], after: tuple[object, ...]) -> dict[str, object]:
    """Property name -> new value for each that differs between two :func:`read_varying`."""
    changes: dict[str, object] = {}
    if before == after:
        return changes
    for (name, shown), old, new in zip(_VARYING, before, after, strict=True):
        if old is new or old == new:
            continue  # equal sources show equal values
        if shown is None:
            changes[name] = new
        elif (value := shown(new)) != shown(old):
            changes[name] = value
    return changes
