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
from typing import TYPE_CHECKING, Final

from mandos.core.values import Secret

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
    """One property: ``read`` is None when write-only; a write sets ``setting`` or is a command."""

    kind: Kind
    read: Callable[[ClientState], object] | None
    setting: str | None = None
    command: bool = False
    constant: bool = False  # never changes while the client exists

    @property
    def readable(self) -> bool:
        """Get and GetAll show it."""
        return self.read is not None

    @property
    def writable(self) -> bool:
        """Set accepts it."""
        return self.setting is not None or self.command


def _setting(field: str, kind: Kind, *, readable: bool = True) -> ClientProperty:
    read = attrgetter(f"config.{field}") if readable else None
    return ClientProperty(kind, read, setting=field)


def _hex(value: object) -> str:
    return "" if value is None else str(value)


#: Every client property, in the order the reference introspects them.
CLIENT_PROPERTIES: Final[dict[str, ClientProperty]] = {
    "ApprovalDelay": _setting("approval_delay", Kind.DURATION),
    "ApprovalDuration": _setting("approval_duration", Kind.DURATION),
    "ApprovalPending": ClientProperty(Kind.FLAG, lambda s: s.approvals_pending > 0),
    "ApprovedByDefault": _setting("approved_by_default", Kind.FLAG),
    "CheckerRunning": ClientProperty(Kind.FLAG, attrgetter("checker_running"), command=True),
    "Checker": _setting("checker", Kind.TEXT),
    "Created": ClientProperty(Kind.DATE, attrgetter("created"), constant=True),
    "Enabled": ClientProperty(Kind.FLAG, attrgetter("enabled"), command=True),
    "Expires": ClientProperty(Kind.DATE, attrgetter("expires")),
    "ExtendedTimeout": _setting("extended_timeout", Kind.DURATION),
    "Fingerprint": ClientProperty(Kind.TEXT, lambda s: _hex(s.config.fingerprint), constant=True),
    "Host": _setting("host", Kind.TEXT),
    "Interval": _setting("interval", Kind.DURATION),
    "KeyID": ClientProperty(Kind.TEXT, lambda s: _hex(s.config.key_id), constant=True),
    "LastApprovalRequest": ClientProperty(Kind.DATE, attrgetter("last_approval_request")),
    "LastCheckedOK": ClientProperty(Kind.DATE, attrgetter("last_checked_ok"), command=True),
    "LastCheckerStatus": ClientProperty(Kind.NUMBER, attrgetter("last_checker_status")),
    "LastEnabled": ClientProperty(Kind.DATE, attrgetter("last_enabled")),
    "Name": ClientProperty(Kind.TEXT, attrgetter("name"), constant=True),
    "ObjectPath": ClientProperty(Kind.PATH, lambda s: s.config.name.dbus_path(), constant=True),
    "Secret": _setting("secret", Kind.SECRET, readable=False),
    "Timeout": _setting("timeout", Kind.DURATION),
}


def read_all(state: ClientState) -> dict[str, object]:
    """Every readable property of ``state``, as core values."""
    return {name: p.read(state) for name, p in CLIENT_PROPERTIES.items() if p.read is not None}


#: Read once when a client is made and never again changed by anything (KeyID and Fingerprint
#: are ``constant`` on the bus, yet a reload of clients.conf may change them).
_FIXED: Final = frozenset({"Created", "Name", "ObjectPath"})
#: The readable properties that a command may change, and how to read them.
_VARYING: Final = tuple(
    (name, p.read)
    for name, p in CLIENT_PROPERTIES.items()
    if p.read is not None and name not in _FIXED
)

_VARYING_READS: Final = tuple(read for _, read in _VARYING)


def read_varying(state: ClientState) -> tuple[object, ...]:
    """The values of the properties a command may change, in :data:`_VARYING`'s order."""
    return tuple([read(state) for read in _VARYING_READS])  # a list: faster than a generator


def varying_changes(before: tuple[object, ...], after: tuple[object, ...]) -> dict[str, object]:
    """Property name -> new value for each that differs between two :func:`read_varying`."""
    return {
        name: new for (name, _), old, new in zip(_VARYING, before, after, strict=True) if old != new
    }
