"""What the server tells about itself: audit records, metrics, unknown keys, explanations.

Two narrow hooks feed it. The connection handler traces each request
(:meth:`Observer.trace`: identified, decided, before the secret, failed, finished), and the
effect runner shows it every effect it carries out (:meth:`Observer.effect`), with the cause
that :mod:`mandos.adapters.cause` holds. Everything here is optional: with no audit log and
no metrics address it only keeps the small bounded facts ``mandos-ctl --unknown/--explain``
read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, assert_never

from mandos.adapters.audit_log import AuditLog
from mandos.adapters.cause import Cause, current_cause
from mandos.adapters.metrics import ClientGauges, Metrics
from mandos.adapters.metrics_http import MetricsEndpoint
from mandos.core.audit_record import Value
from mandos.core.effects import (
    Effect,
    Log,
    PropertiesChanged,
    SaveState,
    Signal,
    StopChecker,
    WakeApprovalWaiters,
)
from mandos.core.explain import Explanation, History, explain
from mandos.core.hostport import parse_host_port
from mandos.core.registry import AwaitApproval, Decision, Refuse, Registry, SendSecret
from mandos.core.unknown_keys import UnknownKey, UnknownKeys
from mandos.core.values import KeyId

log = logging.getLogger("mandos")

#: The core's log line when a checker ran past its timeout (client_state.tick).
CHECKER_TIMEOUT_MESSAGE: Final = "Checker for %s timed out; stopping it"
#: Refuse.reason -> (request outcome, audit event).
REFUSALS: Final = {
    "Disabled": ("disabled", "refused"),
    "Denied": ("not_approved", "approval_denied"),
    "Approval timed out": ("not_approved", "refused"),
}


@dataclass
class _ClientHistory:
    disabled_at: datetime | None = None
    disabled_by: str | None = None
    last_request: datetime | None = None
    last_address: str | None = None
    last_outcome: str | None = None
    approver: Cause | None = None
    approved_at: datetime | None = None


class RequestTrace:
    """One connection, as seen by the observer; the handler calls these in order."""

    __slots__ = (
        "_obs", "_released", "_started", "_waited", "key_id", "name", "outcome", "peer",
        "sent_after",
    )  # fmt: skip

    def __init__(self, observer: Observer, peer: str) -> None:
        self._obs = observer
        self._started = time.monotonic()
        self._waited = False
        self._released = False  # the secret_sent record is on disk
        self.peer = peer
        self.key_id: str | None = None
        self.name: str | None = None
        self.outcome: str | None = None
        self.sent_after: float | None = None

    def _fields(self, **extra: Value) -> dict[str, Value]:
        return {"client": self.name, "key_id": self.key_id, "address": self.peer, **extra}

    def identified(self, key_id: KeyId) -> None:
        """The TLS handshake gave the peer's key ID."""
        self.key_id = str(key_id)

    def decided(self, decision: Decision) -> None:
        """The registry decided (``begin_request`` or ``poll_request``)."""
        obs = self._obs
        match decision:
            case Refuse(name=None):
                self.outcome = "unknown_client"
                obs.saw_unknown(self.key_id or "", self.peer)
                obs.record("refused", self._fields(reason="unknown key"))
            case Refuse(name=name, reason=reason):
                self.name = name
                self.outcome, event = REFUSALS.get(reason, ("failed", "refused"))
                fields = self._fields(reason=reason.lower())
                if event == "approval_denied" and name is not None:
                    fields.update(obs.approver_fields(name))
                obs.record(event, fields)
            case AwaitApproval(name=name):
                self.name = name
                if not self._waited:
                    self._waited = True
                    obs.record("approval_requested", self._fields())
            case SendSecret(name=name):
                self.name = name
                if self._waited:
                    obs.record("approval_granted", self._fields(**obs.approver_fields(name)))
            case _:
                assert_never(decision)

    async def before_secret(self) -> None:
        """The secret is about to be sent: its record must be on disk first."""
        await self._obs.record_durably("secret_sent", self._fields())
        self._released = True

    def sent(self) -> None:
        """The secret went out."""
        self.outcome = "secret_sent"
        self.sent_after = time.monotonic() - self._started

    def failed(self, outcome: str) -> None:
        """The exchange ended early: ``timed_out``, ``handshake_failed``, ``abandoned``..."""
        if self.outcome is None or outcome == "abandoned":
            self.outcome = outcome

    def finish(self) -> None:
        """The connection is closed."""
        if self._released and self.outcome != "secret_sent":
            # Recorded as sent, but the peer did not take it all (gone, or too slow).
            self._obs.record("secret_not_delivered", self._fields(outcome=self.outcome))
        self._obs.finished(self)


class Observer:
    """Audit trail, metrics, unknown keys and client histories of one server."""

    def __init__(
        self,
        now: Callable[[], datetime],
        registry: Callable[[], Registry | None],
        *,
        audit: AuditLog | None = None,
        metrics_address: str = "",
        metrics_per_client: bool = False,
        checker_output: Callable[[str], str | None] = lambda _name: None,
    ) -> None:
        """Raises ConfigError for a bad ``metrics_address`` (``HOST:PORT``)."""
        self._now = now
        self._registry = registry
        self.audit = audit
        self.metrics: Metrics | None = None
        self._address = parse_host_port(metrics_address) if metrics_address else None
        if self._address is not None:
            self.metrics = Metrics(self._gauges, per_client=metrics_per_client)
            if audit is not None:
                audit.on_failure = self.metrics.audit_records_lost
        self._endpoint: MetricsEndpoint | None = None
        self.metrics_port: int | None = None
        self.unknown = UnknownKeys()
        self._history: dict[str, _ClientHistory] = {}
        self._checkers: dict[str, float] = {}
        self._checker_output = checker_output

    @classmethod
    def from_settings(
        cls,
        now: Callable[[], datetime],
        registry: Callable[[], Registry | None],
        *,
        audit_log: str = "",
        metrics_address: str = "",
        metrics_per_client: bool = False,
        checker_output: Callable[[str], str | None] = lambda _name: None,
    ) -> Observer:
        """Open the audit log at ``audit_log`` ("" for none); raises AuditError/ConfigError."""
        audit = AuditLog(Path(audit_log), now) if audit_log else None
        return cls(
            now,
            registry,
            audit=audit,
            metrics_address=metrics_address,
            metrics_per_client=metrics_per_client,
            checker_output=checker_output,
        )

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the metrics endpoint (a bad address fails the start-up)."""
        if self.metrics is not None and self._address is not None:
            self._endpoint = MetricsEndpoint(self.metrics.render, "text/plain; version=0.0.4")
            self.metrics_port = await self._endpoint.start(*self._address)
            log.info("Serving metrics on %s port %d", self._address[0], self.metrics_port)
        self.record("server_started", {})

    async def run(self) -> None:
        """Write the audit trail until cancelled; then flush it and stop serving metrics."""
        try:
            if self.audit is not None:
                await self.audit.run()
            else:
                await asyncio.Event().wait()
        finally:
            if self._endpoint is not None:
                await self._endpoint.close()

    def reopen(self) -> None:
        """SIGHUP: the audit log goes on in a fresh file (logrotate moved the old one)."""
        if self.audit is not None:
            self.audit.reopen()

    # -- audit --------------------------------------------------------------------------------

    def record(self, event: str, fields: dict[str, Value]) -> None:
        """Queue an audit record (no-op without an audit log)."""
        if self.audit is not None:
            self.audit.record(event, fields)

    async def record_durably(self, event: str, fields: dict[str, Value]) -> None:
        """Write an audit record and wait for it to be on disk (AuditError if it cannot)."""
        if self.audit is not None:
            await self.audit.record_durably(event, fields)

    def approver_fields(self, name: str) -> dict[str, Value]:
        """``cause``/``uid`` of the last operator word on ``name`` (or ``default``)."""
        hist = self._hist(name)
        cause, when = hist.approver, hist.approved_at
        valid = self._snapshot(name).get("ApprovalDuration")
        if (
            cause is None
            or when is None
            or not isinstance(valid, timedelta)
            or self._now() > when + valid  # that word has lapsed (approval_duration)
        ):
            return {"cause": "approval delay passed"}
        return {"cause": cause.kind, "uid": cause.uid}

    # -- request hooks ------------------------------------------------------------------------

    def trace(self, peer: str) -> RequestTrace:
        """A new connection from ``peer``."""
        if self.metrics is not None:
            self.metrics.connection_opened()
        return RequestTrace(self, peer)

    def saw_unknown(self, key_id: str, address: str) -> None:
        """A key no client has asked: remember it for mandos-ctl --unknown (the core logs it,
        at the default level, at most once an hour per key)."""
        self.unknown.saw(key_id, address, self._now())

    def finished(self, trace: RequestTrace) -> None:
        """A connection ended: count it, and remember it for --explain."""
        outcome = trace.outcome or "failed"
        if self.metrics is not None:
            self.metrics.request_finished(outcome, trace.name, trace.sent_after)
        if trace.name is not None:
            hist = self._hist(trace.name)
            hist.last_request = self._now()
            hist.last_address = trace.peer
            hist.last_outcome = outcome.replace("_", " ")

    def state_saved(self) -> None:
        """The state file was written."""
        if self.metrics is not None:
            self.metrics.state_saved()

    def reloaded(self, count: int) -> None:
        """clients.conf was read again on SIGHUP."""
        self.record("clients_reloaded", {"clients": count})

    # -- effects ------------------------------------------------------------------------------

    def effect(self, effect: Effect) -> None:
        """See one effect as the runner carries it out (the cause is in the context)."""
        if _unremarkable(effect):
            return
        match effect:
            case PropertiesChanged(name=name, changes=changes) if "Enabled" in changes:
                self._enabled_changed(name, bool(changes["Enabled"]))
            case Signal(name=None, member="ClientAdded" | "ClientRemoved" as member, args=args):
                self._added_or_removed(str(args[0]), added=member == "ClientAdded")
            case Signal(name=str(name), member="CheckerStarted"):
                self._checkers[name] = time.monotonic()
            case Signal(name=str(name), member="CheckerCompleted", args=args):
                self._checker_done(name, "success" if args and args[0] == 0 else "failure")
            case Log(message=message, args=(str(name),)) if message == CHECKER_TIMEOUT_MESSAGE:
                self._checker_done(name, "timeout")
            case StopChecker(name=name):
                self._checkers.pop(name, None)
            case WakeApprovalWaiters(name=name):
                cause = current_cause.get()
                if cause is not None and cause.call.startswith("Approve"):
                    hist = self._hist(name)
                    hist.approver, hist.approved_at = cause, self._now()
            case _:
                pass  # requests are recorded by their trace, which knows the peer

    def _added_or_removed(self, name: str, *, added: bool) -> None:
        key_id = str(self._snapshot(name).get("KeyID") or "") or None
        fields: dict[str, Value] = {"client": name, "key_id": key_id}
        cause = _cause_fields(current_cause.get(), "startup")
        self.record("client_added" if added else "client_removed", {**fields, **cause})
        if not added:
            self._history.pop(name, None)

    def _enabled_changed(self, name: str, enabled: bool) -> None:
        cause = current_cause.get()
        fields: dict[str, Value] = {"client": name, **_cause_fields(cause, "")}
        props = self._snapshot(name)
        fields["key_id"] = str(props.get("KeyID") or "") or None
        if not enabled:
            hist = self._hist(name)
            hist.disabled_at = self._now()
            if cause is None:
                last_ok = props.get("LastCheckedOK")
                fields["cause"] = "timeout"
                fields["checker"] = str(props.get("Checker", ""))
                fields["checker_status"] = _int(props.get("LastCheckerStatus"))
                fields["last_checked_ok"] = (
                    last_ok.isoformat() if isinstance(last_ok, datetime) else None
                )
                hist.disabled_by = "its timeout (no successful check in time)"
            else:
                hist.disabled_by = cause.describe()
        elif cause is None:
            fields["cause"] = "server"
        self.record("client_enabled" if enabled else "client_disabled", fields)

    def _checker_done(self, name: str, result: str) -> None:
        started = self._checkers.pop(name, None)
        if self.metrics is not None:
            seconds = None if started is None else time.monotonic() - started
            self.metrics.checker_finished(result, seconds)

    # -- queries (D-Bus extensions) -----------------------------------------------------------

    def unknown_keys(self) -> list[UnknownKey]:
        """The remembered unknown keys, most recently seen first."""
        return self.unknown.entries()

    def explain(self, name: str) -> Explanation:
        """Why client ``name`` would or would not get its secret now (LocalProtocolError)."""
        registry = self._registry()
        props = registry.snapshot(name) if registry is not None else {"Name": name}
        hist = self._hist(name)
        history = History(
            disabled_at=hist.disabled_at,
            disabled_by=hist.disabled_by,
            last_request=hist.last_request,
            last_request_address=hist.last_address,
            last_outcome=hist.last_outcome,
            checker_output=self._checker_output(name),
        )
        return explain(props, history, self._now())

    # -- helpers ------------------------------------------------------------------------------

    def _hist(self, name: str) -> _ClientHistory:
        hist = self._history.get(name)
        if hist is None:
            hist = self._history[name] = _ClientHistory()
        return hist

    def _snapshot(self, name: str) -> dict[str, object]:
        registry = self._registry()
        with contextlib.suppress(Exception):
            if registry is not None:
                return registry.snapshot(name)
        return {}

    def _gauges(self) -> list[ClientGauges]:
        registry = self._registry()
        if registry is None:
            return []
        return [
            ClientGauges(s.name, s.enabled, s.approvals_pending, s.last_checked_ok, s.expires)
            for s in registry.states()
        ]


#: The signals :meth:`Observer.effect` looks at.
_OBSERVED_SIGNALS: Final = frozenset(
    {"ClientAdded", "ClientRemoved", "CheckerStarted", "CheckerCompleted"}
)


def _unremarkable(effect: Effect) -> bool:
    """Whether :meth:`Observer.effect` surely ignores ``effect``: each served request brings a
    few such (its log line, GotSecret, the new expiry, a save), so they are let by cheaply."""
    if isinstance(effect, SaveState):
        return True
    if isinstance(effect, Log):
        return effect.message != CHECKER_TIMEOUT_MESSAGE
    if isinstance(effect, PropertiesChanged):
        return "Enabled" not in effect.changes
    if isinstance(effect, Signal):
        return effect.member not in _OBSERVED_SIGNALS
    return False


def _cause_fields(cause: Cause | None, default: str) -> dict[str, Value]:
    if cause is None:
        return {"cause": default or None}
    return {"cause": cause.kind, "uid": cause.uid, "call": cause.call or None}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
