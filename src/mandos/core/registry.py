"""All clients: lookup by key ID, the per-connection approval protocol, commands and timers.

Rules of this module:

1. Every public method takes ``now`` and returns effects (or a decision plus effects); the
   adapters perform them. Nothing here waits: a connection that must wait for approval gets
   ``AwaitApproval(until)`` and calls ``poll_request`` when ``WakeApprovalWaiters`` arrives or
   ``until`` passes, and always ``end_request`` at the end, also when the peer vanished. The
   decisions themselves are :mod:`mandos.core.requests`.
2. Property changes are found by diffing ``ClientState.properties()`` around each command, so
   no transition can forget to announce one; any change, addition or removal also yields one
   ``SaveState`` per call (the adapter coalesces writes).
3. Lookup is a dict access (O(1) in the number of clients); ``EMPTY_KEY_ID`` (what every Mandos
   1.8.0 client reported) never matches (REFERENCE A19.3). Timers sit in heaps, so ``tick``
   and ``next_deadline`` cost nothing per idle client; every change to a client goes through
   a method here, which reschedules it.
4. A command naming no client raises ``LocalProtocolError`` (the adapter must not do that);
   a checker report or a request of a client removed meanwhile is absorbed quietly.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from mandos.core.client_state import ClientState, merge_config
from mandos.core.config import ClientConfig
from mandos.core.effects import Effect, Log, PropertiesChanged, SaveState, Signal
from mandos.core.errors import LocalProtocolError
from mandos.core.log_limit import OncePerKey
from mandos.core.properties import CLIENT_PROPERTIES, Kind, read_varying, varying_changes
from mandos.core.requests import (
    AwaitApproval,
    Decision,
    Refuse,
    RequestHandle,
    SendSecret,
    close_request,
    decide,
    not_found,
    open_request,
    sent_log,
)
from mandos.core.timers import Timers
from mandos.core.values import EMPTY_KEY_ID, Fingerprint, KeyId, Secret

__all__ = [  # the request protocol's names stay importable from here
    "AwaitApproval",
    "Decision",
    "Refuse",
    "Registry",
    "RequestHandle",
    "SendSecret",
]


def _finish(out: list[Effect]) -> list[Effect]:
    """Append one SaveState when the batch changed persistent state."""
    if any(
        isinstance(e, PropertiesChanged)
        or (isinstance(e, Signal) and e.member in ("ClientAdded", "ClientRemoved"))
        for e in out
    ):
        out.append(SaveState())
    return out


class _Diff:
    """The properties of one client before a change, to announce what the change did."""

    __slots__ = ("_before", "_secret", "_state")

    def __init__(self, state: ClientState) -> None:
        self._state = state
        self._before = read_varying(state)  # not the few no command changes
        self._secret = state.config.secret

    def effects(self) -> list[Effect]:
        """A PropertiesChanged for what changed since construction (or nothing)."""
        state = self._state
        changes = varying_changes(self._before, read_varying(state))
        invalidated = ("Secret",) if state.config.secret != self._secret else ()
        if changes or invalidated:
            return [PropertiesChanged(state.name, changes, invalidated)]
        return []


def _tracked(state: ClientState, action: Callable[[], list[Effect]]) -> list[Effect]:
    """Run ``action`` and append a PropertiesChanged for what it changed."""
    diff = _Diff(state)
    out = action()
    return out + diff.effects()


class Registry:
    """Every configured client, by name and by key ID / fingerprint."""

    def __init__(self, configs: Iterable[ClientConfig], now: datetime, rng: random.Random) -> None:
        self._rng = rng
        self._clients: dict[str, ClientState] = {}
        self._order: dict[ClientState, int] = {}  # insertion order, as _clients iterates
        self._added = itertools.count()
        self._timers = Timers()
        self._by_key_id: dict[KeyId, ClientState] = {}
        self._by_fingerprint: dict[Fingerprint, ClientState] = {}
        self._unknown = OncePerKey()  # unknown keys are logged once an hour each
        self._adopt([ClientState.fresh(c, now) for c in configs], now)

    @classmethod
    def of_states(
        cls, states: Iterable[ClientState], now: datetime, rng: random.Random
    ) -> Registry:
        """A registry of these (restored, not yet started) states; ``start`` runs for each."""
        registry = cls((), now, rng)
        registry.replace_states(states, now)
        return registry

    def replace_states(self, states: Iterable[ClientState], now: datetime) -> None:
        """Put restored states in place of all current ones (state_model's restore)."""
        self._clients = {}
        self._order = {}
        self._timers = Timers()
        self._adopt(list(states), now)

    def _adopt(self, states: list[ClientState], now: datetime) -> None:
        for state in states:
            state.start(now, self._rng)
            self._clients[state.name] = state
            self._order[state] = next(self._added)
        self._timers.update_all(states)  # one heapify, not a push per client
        self._reindex()

    def _add(self, state: ClientState, now: datetime) -> None:
        state.start(now, self._rng)
        self._clients[state.name] = state
        self._order[state] = next(self._added)
        self._timers.update(state)

    def _reindex(self) -> None:
        self._by_key_id = {}
        self._by_fingerprint = {}
        for state in self._clients.values():
            key_id, fpr = state.config.key_id, state.config.fingerprint
            if key_id is not None:
                self._by_key_id.setdefault(key_id, state)
            for kid in state.config.other_key_ids:
                self._by_key_id.setdefault(kid, state)
            if fpr is not None:
                self._by_fingerprint.setdefault(fpr, state)
        # Never matched; taken out once rather than compared with every key ID (10,000 clients).
        self._by_key_id.pop(EMPTY_KEY_ID, None)

    def _get(self, name: str) -> ClientState:
        try:
            return self._clients[name]
        except KeyError:
            raise LocalProtocolError(f"no client named {name!r}") from None

    def _owns(self, state: ClientState) -> bool:
        return self._clients.get(state.name) is state

    def _changed(self, state: ClientState, out: list[Effect]) -> list[Effect]:
        """``out`` plus SaveState if needed, after rescheduling ``state``'s timers."""
        self._timers.update(state)
        return _finish(out)

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

    # -- the per-connection protocol (mandos.core.requests) ----------------------------------

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
            level = logging.INFO if self._unknown.first(shown, now) else logging.DEBUG
            refusal, out = not_found(shown, address, level)
            return None, refusal, out
        diff = _Diff(state)
        handle, decision, out = open_request(state, now)
        return handle, decision, self._changed(state, out + diff.effects())

    def poll_request(self, handle: RequestHandle, now: datetime) -> tuple[Decision, list[Effect]]:
        """Decide again after a wake-up or at ``until``."""
        state = handle.state
        if not self._owns(state) or handle.ended:
            return Refuse(handle.name, "Disabled"), []
        diff = _Diff(state)
        decision, out = decide(handle, now)
        return decision, self._changed(state, out + diff.effects())

    def end_request(self, handle: RequestHandle, now: datetime, sent: bool) -> list[Effect]:
        """The connection is over; ``sent`` says whether the secret went out."""
        if handle.ended:
            return []
        state = handle.state
        if not self._owns(state):
            handle.abandon()
            return [sent_log(handle.name)] if sent else []
        diff = _Diff(state)
        out = close_request(handle, now, sent)
        return self._changed(state, out + diff.effects())

    # -- commands (D-Bus, SIGHUP) ------------------------------------------------------------

    def _command(self, name: str, action: Callable[[ClientState], list[Effect]]) -> list[Effect]:
        state = self._get(name)
        return self._changed(state, _tracked(state, lambda: action(state)))

    def approve(self, name: str, approved: bool, now: datetime) -> list[Effect]:
        """``Approve(b)``: valid for approval_duration; waiting connections poll again."""
        return self._command(name, lambda s: s.approve(approved, now))

    def enable(self, name: str, now: datetime) -> list[Effect]:
        """Enable client ``name`` (no-op when enabled)."""
        return self._command(name, lambda s: s.enable(now, "on request (D-Bus)"))

    # ``now`` is unused by some commands: every command takes it, so callers need not know.
    def disable(self, name: str, now: datetime) -> list[Effect]:  # noqa: ARG002
        """Disable client ``name`` (no-op when disabled)."""
        return self._command(name, lambda s: s.disable(cause="on request (D-Bus)"))

    def start_checker(self, name: str, now: datetime) -> list[Effect]:
        """Start a checker now, unless one is running."""
        return self._command(name, lambda s: s.start_checker(now))

    def stop_checker(self, name: str, now: datetime) -> list[Effect]:  # noqa: ARG002
        """Stop the running checker, if any."""
        return self._command(name, lambda s: s.stop_checker())

    def checked_ok(self, name: str, now: datetime) -> list[Effect]:
        """``CheckedOK()``: count as a successful check now (bumps the expiry)."""
        return self._command(name, lambda s: s.checked_ok(now))

    def set_property(self, name: str, prop: str, value: object, now: datetime) -> list[Effect]:
        """Write a property of :data:`CLIENT_PROPERTIES` (durations as timedelta, the secret
        as bytes or Secret); LocalProtocolError names a bad one."""
        state = self._get(name)
        spec = CLIENT_PROPERTIES.get(prop)
        if spec is None or not spec.writable:
            raise LocalProtocolError(f"property {prop!r} is not writable")
        if prop == "Enabled":
            flag = _checked(prop, value, Kind.FLAG)
            return self.enable(name, now) if flag else self.disable(name, now)
        if prop == "CheckerRunning":
            flag = _checked(prop, value, Kind.FLAG)
            return self.start_checker(name, now) if flag else self.stop_checker(name, now)
        if prop == "LastCheckedOK":
            return self.checked_ok(name, now)
        assert spec.setting is not None
        if spec.kind is Kind.SECRET and isinstance(value, bytes | bytearray):
            value = Secret(bytes(value))
        changes: dict[str, Any] = {spec.setting: _checked(prop, value, spec.kind)}
        new = dataclasses.replace(state.config, **changes)
        return self._command(name, lambda s: s.reconfigure(new, now))

    def remove(self, name: str, now: datetime) -> list[Effect]:  # noqa: ARG002
        """``RemoveClient``: disable quietly, forget, announce ``ClientRemoved``."""
        state = self._get(name)
        out = state.disable(quiet=True)
        del self._clients[name]
        del self._order[state]
        self._timers.forget(state)
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
                self._add(ClientState.fresh(file_config, now), now)
                out += [
                    Log(logging.INFO, "Adding client %s", (name,)),
                    Signal(None, "ClientAdded", (name,)),
                ]
            else:
                out += _tracked(state, functools.partial(_reload_one, state, file_config, now))
                self._timers.update(state)
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
        """Fire everything due at ``now`` (early or late calls are fine).

        Only the clients with a timer due, or whose checker schedule a backward clock jump
        must pull back, are touched (in configuration order), so the cost does not grow with
        the number of idle clients.
        """
        due = self._timers.due(now)
        out: list[Effect] = []
        for state in sorted(due, key=self._order.__getitem__):
            if due[state]:
                out += _tracked(state, functools.partial(state.tick, now))
            else:
                out += state.tick(now)  # nothing due: only re-anchors the schedule
            self._timers.update(state)
        return _finish(out)

    def next_deadline(self) -> datetime | None:
        """The earliest pending timer of any client, or None."""
        return self._timers.next_deadline()


def _checked(prop: str, value: object, kind: Kind) -> object:
    """``value`` if it has the kind's type (a bool is not an int here), else an error."""
    python_type = kind.python_type
    if not isinstance(value, python_type) or (kind is not Kind.FLAG and isinstance(value, bool)):
        raise LocalProtocolError(f"property {prop!r} needs a {python_type.__name__}")
    if isinstance(value, timedelta) and value < timedelta(0):
        raise LocalProtocolError(f"property {prop!r} cannot be negative")
    return value


def _reload_one(state: ClientState, file_config: ClientConfig, now: datetime) -> list[Effect]:
    seen = state.file_config
    state.file_config = file_config
    out = state.reconfigure(merge_config(seen, state.config, file_config), now)
    if file_config.enabled != seen.enabled:
        cause = f"clients.conf now says enabled = {file_config.enabled}"
        out += state.enable(now, cause) if file_config.enabled else state.disable(cause=cause)
    return out
