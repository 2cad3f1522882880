"""What the core asks the adapters to do: frozen values, a closed union, no behaviour.

Values are plain Python (``timedelta``, aware-UTC ``datetime | None``, ``bool``, ``int``,
``str``); the D-Bus adapter converts them to wire types (ms as ``t``, naive-UTC ISO strings).

Conventions the adapters rely on:

- ``Signal(name, member, args)``: ``name`` is a client name, or None for the server object
  ``/``. Client members and their args: ``CheckerStarted(command)``,
  ``CheckerCompleted(exitcode, waitstatus, command)``, ``GotSecret()``,
  ``NeedApproval(timeout_ms, approved_by_default)``, ``Rejected(reason)``. Server members:
  ``ClientNotFound(key_id_hex, address)``, ``ClientAdded(name)`` (export the object first,
  then announce it), ``ClientRemoved(name)`` (announce, then unexport).
- ``PropertiesChanged.changes`` uses the D-Bus property names of REFERENCE A7;
  ``invalidated`` lists properties whose value is not sent (``Secret``).
- ``StopChecker``: kill the checker's whole process group; report nothing back.
- ``WakeApprovalWaiters``: every connection waiting on this client calls ``poll_request``.
- ``SaveState``: the registry changed; the adapter may coalesce many into one write.
- ``Log``: an operator log line, lazily formatted as ``message % args``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Effect",
    "Log",
    "PropertiesChanged",
    "SaveState",
    "Signal",
    "StartChecker",
    "StopChecker",
    "WakeApprovalWaiters",
]


@dataclass(frozen=True, slots=True)
class StartChecker:
    """Run ``command`` under ``/bin/sh -c`` for client ``name``; report its exit."""

    name: str
    command: str


@dataclass(frozen=True, slots=True)
class StopChecker:
    """Kill the running checker of client ``name`` (its process group)."""

    name: str


@dataclass(frozen=True, slots=True)
class Signal:
    """Emit a D-Bus signal on a client (``name``) or on the server object (None)."""

    name: str | None
    member: str
    args: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class PropertiesChanged:
    """Client ``name``'s properties changed to ``changes``; ``invalidated`` changed unseen."""

    name: str
    changes: dict[str, object]
    invalidated: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class WakeApprovalWaiters:
    """Connections waiting for approval of client ``name`` must poll again."""

    name: str


@dataclass(frozen=True, slots=True)
class SaveState:
    """The persistent state changed and should be written (coalescing allowed)."""


@dataclass(frozen=True, slots=True)
class Log:
    """An operator log line: ``logging`` level, %-format message and its args."""

    level: int
    message: str
    args: tuple[object, ...] = ()


Effect = (
    StartChecker | StopChecker | Signal | PropertiesChanged | WakeApprovalWaiters | SaveState | Log
)
