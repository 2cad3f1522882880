"""All clients: lookup by key ID, the per-connection approval protocol, commands and timers.

Rules of this module:

1. Every public method takes ``now`` and returns effects (or a decision plus effects); the
   adapters perform them. Nothing here waits: a connection that must wait for approval gets
   ``AwaitApproval(until)`` and calls ``poll_request`` when ``WakeApprovalWaiters`` arrives or
   ``until`` passes, and always ``end_request`` at the end, also when the peer vanished.
2. Property changes are found by diffing ``ClientState.properties()`` around each command, so
   no transition can forget to announce one; any change, addition or removal also yields one
   ``SaveState`` per call (the adapter coalesces writes).
3. Lookup is a dict access (O(1) in the number of clients); ``EMPTY_KEY_ID`` (what every Mandos
   1.8.0 client reported) never matches (REFERENCE A19.3).
4. A command naming no client raises ``LocalProtocolError`` (the adapter must not do that);
   a checker report or a request of a client removed meanwhile is absorbed quietly.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, assert_never

from mandos.core.client_state import ClientState, Verdict, add_time, merge_config
from mandos.core.config import ClientConfig
from mandos.core.effects import Effect, Log, PropertiesChanged, SaveState, Signal
from mandos.core.errors import LocalProtocolError
from mandos.core.values import EMPTY_KEY_ID, Fingerprint, KeyId, Secret

_MS: Final = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class SendSecret:
    """Send ``secret`` to the peer, then call ``end_request(sent=True)``."""

    name: str
    secret: Secret


@dataclass(frozen=True, slots=True)
class AwaitApproval:
    """Wait for ``WakeApprovalWaiters(name)`` or ``until``, then ``poll_request``."""

    name: str
    until: datetime


@dataclass(frozen=True, slots=True)
class Refuse:
    """Close without data; ``name`` is None when no client has the peer's key."""

    name: str | None
    reason: str


Decision = SendSecret | AwaitApproval | Refuse

#: Writable properties that only replace a setting: D-Bus name -> (ClientConfig field, type).
CONFIG_PROPERTIES: Final[dict[str, tuple[str, type]]] = {
    "ApprovalDelay": ("approval_delay", timedelta),
    "ApprovalDuration": ("approval_duration", timedelta),
    "ExtendedTimeout": ("extended_timeout", timedelta),
    "Interval": ("interval", timedelta),
    "Timeout": ("timeout", timedelta),
    "ApprovedByDefault": ("approved_by_default", bool),
    "Checker": ("checker", str),
    "Host": ("host", str),
    "Secret": ("secret", Secret),
}


class RequestHandle:
    """One connection's claim on a client, from ``begin_request`` to ``end_request``."""

    __slots__ = ("_counted", "_ended", "_state", "name", "until")

    def __init__(self, state: ClientState) -> None:
        self.name = state.name
        self.until: datetime | None = None  # set when the approval wait starts
        self._state = state
        self._counted = False
        self._ended = False


def _finish(out: list[Effect]) -> list[Effect]:
    """Append one SaveState when the batch changed persistent state."""
    if any(
        isinstance(e, PropertiesChanged)
        or (isinstance(e, Signal) and e.member in ("ClientAdded", "ClientRemoved"))
        for e in out
    ):
        out.append(SaveState())
    return out


def _tracked(state: ClientState, action: Callable[[], list[Effect]]) -> list[Effect]:
    """Run ``action`` and append a PropertiesChanged for what it changed."""
    before = state.properties()
    secret = state.config.secret
    out = action()
    after = state.properties()
    changes = {k: v for k, v in after.items() if before[k] != v}
    invalidated = ("Secret",) if state.config.secret != secret else ()
    if changes or invalidated:
        out.append(PropertiesChanged(state.name, changes, invalidated))
    return out


class Registry:
    """Every configured client, by name and by key ID / fingerprint."""

    def __init__(self, configs: Iterable[ClientConfig], now: datetime, rng: random.Random) -> None:
        self._rng = rng
        self._clients: dict[str, ClientState] = {}
        self._by_key_id: dict[KeyId, ClientState] = {}
        self._by_fingerprint: dict[Fingerprint, ClientState] = {}
        self._adopt([ClientState.fresh(c, now) for c in configs], now)

    def replace_states(self, states: Iterable[ClientState], now: datetime) -> None:
        """Put restored states in place of all current ones (state_model's restore)."""
        self._clients = {}
        self._adopt(list(states), now)

    def _adopt(self, states: list[ClientState], now: datetime) -> None:
        for state in states:
            state.start(now, self._rng)
            self._clients[state.name] = state
        self._reindex()

    def _reindex(self) -> None:
        self._by_key_id = {}
        self._by_fingerprint = {}
        for state in self._clients.values():
            key_id, fpr = state.config.key_id, state.config.fingerprint
            if key_id is not None and key_id != EMPTY_KEY_ID:
                self._by_key_id.setdefault(key_id, state)
            if fpr is not None:
                self._by_fingerprint.setdefault(fpr, state)

    def _get(self, name: str) -> ClientState:
        try:
            return self._clients[name]
        except KeyError:
            raise LocalProtocolError(f"no client named {name!r}") from None

    def _owns(self, state: ClientState) -> bool:
        return self._clients.get(state.name) is state

    def announce(self) -> list[Effect]:
        """Startup effects: ``ClientAdded`` for every client (or a warning that there are none)."""
        if not self._clients:
            return [Log(logging.WARNING, "No clients defined")]
        return [Signal(None, "ClientAdded", (name,)) for name in self._clients]

    def names(self) -> list[str]:
        """Names of all clients, in configuration order."""
        return list(self._clients)

    def states(self) -> list[ClientState]:
        """All client states (read them; change them only through the registry)."""
        return list(self._clients.values())

    def find(self, key_id: KeyId | None, fingerprint: Fingerprint | None = None) -> str | None:
        """The name of the client with this key ID (else this fingerprint), or None."""
        state = self._find(key_id, fingerprint)
        return None if state is None else state.name

    def _find(self, key_id: KeyId | None, fingerprint: Fingerprint | None) -> ClientState | None:
        if key_id is not None:
            return self._by_key_id.get(key_id)
        if fingerprint is not None:
            return self._by_fingerprint.get(fingerprint)
        return None

    def snapshot(self, name: str) -> dict[str, object]:
        """Every readable D-Bus property of client ``name`` (REFERENCE A7), as Python values."""
        return self._get(name).properties()

    # -- the per-connection protocol ---------------------------------------------------------

    def begin_request(
        self,
        key_id: KeyId | None,
        address: str,
        now: datetime,
        *,
        fingerprint: Fingerprint | None = None,
    ) -> tuple[RequestHandle | None, Decision, list[Effect]]:
        """A peer with this key asks for its secret; the handle is None only for strangers."""
        state = self._find(key_id, fingerprint)
        if state is None:
            shown = str(key_id if key_id is not None else fingerprint or "")
            return (
                None,
                Refuse(None, "Client not found"),
                [
                    Signal(None, "ClientNotFound", (shown, address)),
                    Log(
                        logging.INFO,
                        "Client not found for key ID: %s, address: %s",
                        (shown, address),
                    ),
                ],
            )
        handle = RequestHandle(state)
        decision: list[Decision] = []

        def action() -> list[Effect]:
            if state.config.approval_delay > timedelta(0):
                state.approvals_pending += 1
                handle._counted = True
            d, out = self._decide(handle, now)
            decision.append(d)
            return out

        out = _finish(_tracked(state, action))
        return handle, decision[0], out

    def poll_request(self, handle: RequestHandle, now: datetime) -> tuple[Decision, list[Effect]]:
        """Decide again after a wake-up or at ``until``."""
        state = handle._state
        if not self._owns(state) or handle._ended:
            return Refuse(handle.name, "Disabled"), []
        decision: list[Decision] = []

        def action() -> list[Effect]:
            d, out = self._decide(handle, now)
            decision.append(d)
            return out

        out = _finish(_tracked(state, action))
        return decision[0], out

    def _decide(self, handle: RequestHandle, now: datetime) -> tuple[Decision, list[Effect]]:
        state, name = handle._state, handle.name
        if not state.enabled:
            return self._reject(name, "Disabled", logging.INFO, "Client %s is disabled")
        verdict = state.approval_verdict(now, handle.until)
        match verdict:
            case Verdict.SEND:
                return SendSecret(name, state.config.secret), []
            case Verdict.DENY:
                return self._reject(name, "Denied", logging.WARNING, "Client %s was not approved")
            case Verdict.TIMED_OUT:
                return self._reject(
                    name,
                    "Approval timed out",
                    logging.WARNING,
                    "Client %s timed out while waiting for approval",
                )
            case Verdict.WAIT:
                out: list[Effect] = []
                if handle.until is None:
                    delay = state.config.approval_delay
                    handle.until = add_time(now, delay)
                    state.last_approval_request = now
                    out = [
                        Log(logging.INFO, "Client %s needs approval", (name,)),
                        Signal(
                            name,
                            "NeedApproval",
                            (delay // _MS, state.config.approved_by_default),
                        ),
                    ]
                return AwaitApproval(name, handle.until), out
            case _:  # pragma: no cover - exhaustive
                assert_never(verdict)

    @staticmethod
    def _reject(name: str, reason: str, level: int, message: str) -> tuple[Decision, list[Effect]]:
        return Refuse(name, reason), [
            Log(level, message, (name,)),
            Signal(name, "Rejected", (reason,)),
        ]

    def end_request(self, handle: RequestHandle, now: datetime, sent: bool) -> list[Effect]:
        """The connection is over; ``sent`` says whether the secret went out."""
        if handle._ended:
            return []
        handle._ended = True
        state, name = handle._state, handle.name
        sent_log: list[Effect] = [Log(logging.INFO, "Sending secret to %s", (name,))]
        if not self._owns(state):
            return sent_log if sent else []

        def action() -> list[Effect]:
            if handle._counted:
                state.approvals_pending -= 1
            if not sent:
                return []
            state.bump_timeout(now, state.config.extended_timeout)
            return [*sent_log, Signal(name, "GotSecret")]

        return _finish(_tracked(state, action))

    # -- commands (D-Bus, SIGHUP) ------------------------------------------------------------

    def _command(self, name: str, action: Callable[[ClientState], list[Effect]]) -> list[Effect]:
        state = self._get(name)
        return _finish(_tracked(state, lambda: action(state)))

    def approve(self, name: str, approved: bool, now: datetime) -> list[Effect]:
        """``Approve(b)``: valid for approval_duration; waiting connections poll again."""
        return self._command(name, lambda s: s.approve(approved, now))

    def enable(self, name: str, now: datetime) -> list[Effect]:
        """Enable client ``name`` (no-op when enabled)."""
        return self._command(name, lambda s: s.enable(now))

    def disable(self, name: str, now: datetime) -> list[Effect]:
        """Disable client ``name`` (no-op when disabled)."""
        return self._command(name, lambda s: s.disable())

    def start_checker(self, name: str, now: datetime) -> list[Effect]:
        """Start a checker now, unless one is running."""
        return self._command(name, lambda s: s.start_checker(now))

    def stop_checker(self, name: str, now: datetime) -> list[Effect]:
        """Stop the running checker, if any."""
        return self._command(name, lambda s: s.stop_checker())

    def checked_ok(self, name: str, now: datetime) -> list[Effect]:
        """``CheckedOK()``: count as a successful check now (bumps the expiry)."""
        return self._command(name, lambda s: s.checked_ok(now))

    def set_property(self, name: str, prop: str, value: object, now: datetime) -> list[Effect]:
        """Write a D-Bus property of REFERENCE A7 (durations as timedelta, Secret as bytes)."""
        state = self._get(name)
        if prop == "Enabled":
            flag = _typed(prop, value, bool)
            return self.enable(name, now) if flag else self.disable(name, now)
        if prop == "CheckerRunning":
            flag = _typed(prop, value, bool)
            return self.start_checker(name, now) if flag else self.stop_checker(name, now)
        if prop == "LastCheckedOK":
            return self.checked_ok(name, now)
        if prop not in CONFIG_PROPERTIES:
            raise LocalProtocolError(f"property {prop!r} is not writable")
        field, kind = CONFIG_PROPERTIES[prop]
        if kind is Secret and isinstance(value, bytes | bytearray):
            value = Secret(bytes(value))
        checked = _typed(prop, value, kind)
        if isinstance(checked, timedelta) and checked < timedelta(0):
            raise LocalProtocolError(f"property {prop!r} cannot be negative")
        changes: dict[str, Any] = {field: checked}
        new = dataclasses.replace(state.config, **changes)
        return self._command(name, lambda s: s.reconfigure(new, now))

    def remove(self, name: str, now: datetime) -> list[Effect]:
        """``RemoveClient``: disable quietly, forget, announce ``ClientRemoved``."""
        state = self._get(name)
        out = state.disable(quiet=True)
        del self._clients[name]
        self._reindex()
        out += [
            Log(logging.INFO, "Removing client %s", (name,)),
            Signal(None, "ClientRemoved", (name,)),
        ]
        return _finish(out)

    def reload(self, configs: Iterable[ClientConfig], now: datetime) -> list[Effect]:
        """Adopt a re-read clients.conf: values the file changed win, others keep runtime ones."""
        files = {c.name.value: c for c in configs}
        out: list[Effect] = []
        for name in [n for n in self._clients if n not in files]:
            out += self.remove(name, now)
        for name, file_config in files.items():
            state = self._clients.get(name)
            if state is None:
                state = ClientState.fresh(file_config, now)
                state.start(now, self._rng)
                self._clients[name] = state
                out += [
                    Log(logging.INFO, "Adding client %s", (name,)),
                    Signal(None, "ClientAdded", (name,)),
                ]
            else:
                out += _tracked(state, functools.partial(_reload_one, state, file_config, now))
        self._reindex()
        return _finish(out)

    def checker_finished(
        self, name: str, returncode: int | None, signal: int | None, now: datetime
    ) -> list[Effect]:
        """A checker exited (``signal`` set when a signal killed it); ignored for strangers."""
        if name not in self._clients:
            return []
        return self._command(name, lambda s: s.checker_finished(returncode, signal, now))

    # -- timers ------------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[Effect]:
        """Fire everything due at ``now`` (early or late calls are fine)."""
        out: list[Effect] = []
        for state in self._clients.values():
            deadline = state.next_deadline()
            if deadline is not None and deadline <= now:
                out += _tracked(state, functools.partial(state.tick, now))
            else:
                out += state.tick(now)  # nothing due: at most re-anchors the schedule
        return _finish(out)

    def next_deadline(self) -> datetime | None:
        """The earliest pending timer of any client, or None."""
        deadlines = (s.next_deadline() for s in self._clients.values())
        return min((d for d in deadlines if d is not None), default=None)


def _typed(prop: str, value: object, kind: type) -> object:
    """``value`` if it is a ``kind`` (a bool is not an int here), else a LocalProtocolError."""
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise LocalProtocolError(f"property {prop!r} needs a {kind.__name__}")
    return value


def _reload_one(state: ClientState, file_config: ClientConfig, now: datetime) -> list[Effect]:
    seen = state.file_config
    state.file_config = file_config
    out = state.reconfigure(merge_config(seen, state.config, file_config), now)
    if file_config.enabled != seen.enabled:
        out += state.enable(now) if file_config.enabled else state.disable()
    return out
