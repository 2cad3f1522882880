"""The per-connection request protocol: one peer asks for its client's secret.

Rules of this module:

1. A connection runs ``open_request`` (through ``Registry.begin_request``), then
   ``decide`` after each wake-up or at ``until`` (``Registry.poll_request``), and always
   ``close_request`` at the end (``Registry.end_request``), also when the peer vanished.
2. Each decision is a closed sum: :class:`SendSecret`, :class:`AwaitApproval` or
   :class:`Refuse`; the adapter matches it exhaustively. Nothing here waits or reads a clock.
3. These functions change one :class:`ClientState`; finding the client, announcing property
   changes and scheduling its timers are the registry's job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, assert_never

from mandos.core.client_state import ClientState, Verdict, add_time
from mandos.core.effects import Effect, Log, Signal
from mandos.core.values import Secret

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


class RequestHandle:
    """One connection's claim on a client, from ``begin_request`` to ``end_request``."""

    __slots__ = ("_counted", "_ended", "_state", "name", "until")

    def __init__(self, state: ClientState) -> None:
        self.name = state.name
        self.until: datetime | None = None  # set when the approval wait starts
        self._state = state
        self._counted = False
        self._ended = False

    @property
    def state(self) -> ClientState:
        """The client this request is for (it may have been removed meanwhile)."""
        return self._state

    @property
    def ended(self) -> bool:
        """``close_request`` or ``abandon`` ran."""
        return self._ended

    def abandon(self) -> None:
        """End a request whose client was removed meanwhile (nothing to uncount)."""
        self._ended = True


def not_found(shown: str, address: str, level: int = logging.INFO) -> tuple[Decision, list[Effect]]:
    """No client has the peer's key (``shown``: its key ID or fingerprint); logged at ``level``."""
    return Refuse(None, "Client not found"), [
        Signal(None, "ClientNotFound", (shown, address)),
        Log(level, "Client not found for key ID: %s, address: %s", (shown, address)),
    ]


def open_request(state: ClientState, now: datetime) -> tuple[RequestHandle, Decision, list[Effect]]:
    """Start a request; a client with an approval delay counts it as pending."""
    handle = RequestHandle(state)
    if state.config.approval_delay > timedelta(0):
        state.approvals_pending += 1
        handle._counted = True
    decision, out = decide(handle, now)
    return handle, decision, out


def decide(handle: RequestHandle, now: datetime) -> tuple[Decision, list[Effect]]:
    """What the connection does now; the first wait starts the approval delay."""
    state, name = handle.state, handle.name
    if not state.enabled:
        return _reject(name, "Disabled", logging.INFO, "Client %s is disabled")
    verdict = state.approval_verdict(now, handle.until)
    match verdict:
        case Verdict.SEND:
            return SendSecret(name, state.config.secret), []
        case Verdict.DENY:
            return _reject(name, "Denied", logging.WARNING, "Client %s was not approved")
        case Verdict.TIMED_OUT:
            return _reject(
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
                    Signal(name, "NeedApproval", (delay // _MS, state.config.approved_by_default)),
                ]
            return AwaitApproval(name, handle.until), out
        case _:  # pragma: no cover - exhaustive
            assert_never(verdict)


def _reject(name: str, reason: str, level: int, message: str) -> tuple[Decision, list[Effect]]:
    return Refuse(name, reason), [Log(level, message, (name,)), Signal(name, "Rejected", (reason,))]


def sent_log(name: str) -> Log:
    """The operator's line for a secret that went out."""
    return Log(logging.INFO, "Sending secret to %s", (name,))


def close_request(handle: RequestHandle, now: datetime, sent: bool) -> list[Effect]:
    """End the request (once): uncount it; a sent secret extends the client's expiry."""
    handle._ended = True
    state = handle.state
    if handle._counted:
        state.approvals_pending -= 1
    if not sent:
        return []
    state.bump_timeout(now, state.config.extended_timeout)
    return [sent_log(handle.name), Signal(handle.name, "GotSecret")]
