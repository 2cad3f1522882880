"""One client's lifecycle: enable/disable, expiry, checker schedule and approval (REFERENCE A4).

Rules of this module:

1. Pure: every method takes ``now`` (aware UTC) and returns effects; nothing here waits, reads a
   clock or runs a process. Property-change notification is the registry's job (it diffs
   ``properties()`` around each call), so methods here return only the other effects.
2. Timers are plain fields: ``checker_next_start``, ``expires``, the checker kill bound
   ``checker_started + timeout``, and ``approved_until``. ``tick(now)`` fires all that are due
   at ``now`` (and nothing else); ``next_deadline()`` is the earliest of them.
3. Checkers never overlap: when a start is due while one still runs, that start is skipped and
   the schedule moves on by whole intervals. A checker still running ``timeout`` after it
   started is stopped (``StopChecker``; the adapter kills its process group and reports
   nothing); the status of the last finished checker is kept. The reference has no such bound:
   a hung checker would otherwise block every later check.
4. After a late tick (a forward clock jump) missed checker starts collapse into one; after an
   early one (a backward jump) the next start is pulled back to at most one interval away.
   Scheduling never uses an interval below ``MIN_INTERVAL`` (a zero interval would spin).
5. Date arithmetic saturates at ``datetime.max`` instead of raising ``OverflowError``.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from mandos.core.checker_command import expand_runtime
from mandos.core.config import ClientConfig
from mandos.core.effects import Effect, Log, Signal, StartChecker, StopChecker, WakeApprovalWaiters
from mandos.core.errors import CheckerError
from mandos.core.properties import read_all

NEVER_CHECKED: Final = -2
CRASHED: Final = -1
MIN_INTERVAL: Final = timedelta(seconds=1)
_FAR_FUTURE: Final = datetime.max.replace(tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def add_time(when: datetime, delta: timedelta) -> datetime:
    """``when + delta``, saturating at the representable range instead of raising."""
    try:
        return when + delta
    except OverflowError:
        return _FAR_FUTURE if delta > timedelta(0) else datetime.min.replace(tzinfo=UTC)


def random_delay(interval: timedelta, rng: random.Random) -> timedelta:
    """A uniformly random delay in [0, interval], in whole milliseconds (as the reference)."""
    return timedelta(milliseconds=rng.randint(0, max(0, interval // _MS)))


def _naive_str(when: datetime | None) -> str:
    """How the reference's checker expansion prints a (naive UTC) datetime."""
    return "None" if when is None else str(when.astimezone(UTC).replace(tzinfo=None))


class CheckerOutcome(enum.Enum):
    """How a checker process ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CRASHED = "crashed"


#: Operator log line for each outcome (REFERENCE A5).
CHECKER_LOG: Final[dict[CheckerOutcome, tuple[int, str]]] = {
    CheckerOutcome.SUCCEEDED: (logging.DEBUG, "Checker for %s succeeded"),
    CheckerOutcome.FAILED: (logging.INFO, "Checker for %s failed"),
    CheckerOutcome.CRASHED: (logging.WARNING, "Checker for %s crashed?"),
}


def classify_exit(returncode: int | None) -> CheckerOutcome:
    """Exit 0 is success, another status a failure, no status (a signal) a crash."""
    if returncode is None or returncode < 0:
        return CheckerOutcome.CRASHED
    return CheckerOutcome.SUCCEEDED if returncode == 0 else CheckerOutcome.FAILED


class Approval(enum.Enum):
    """The operator's current word on a client (``Approve(b)``, valid for approval_duration)."""

    UNDECIDED = "undecided"
    APPROVED = "approved"
    DENIED = "denied"


class Verdict(enum.Enum):
    """What one connection of an enabled client should do next."""

    SEND = "send"
    WAIT = "wait"
    DENY = "deny"
    TIMED_OUT = "timed out"


_BY_DEFAULT: Final = "by default"

#: (operator's word, approval delay passed) -> verdict; "by default" follows
#: approved_by_default. An explicit word beats the deadline.
APPROVAL_TABLE: Final[dict[tuple[Approval, bool], Verdict | str]] = {
    (Approval.APPROVED, False): Verdict.SEND,
    (Approval.APPROVED, True): Verdict.SEND,
    (Approval.DENIED, False): Verdict.DENY,
    (Approval.DENIED, True): Verdict.DENY,
    (Approval.UNDECIDED, False): Verdict.WAIT,
    (Approval.UNDECIDED, True): _BY_DEFAULT,
}

#: Settings whose clients.conf value wins over the runtime one only when the file changed.
MERGED_FIELDS: Final = tuple(
    f.name for f in dataclasses.fields(ClientConfig) if f.name not in ("name", "raw", "enabled")
)


def merge_config(seen: ClientConfig, runtime: ClientConfig, file: ClientConfig) -> ClientConfig:
    """Precedence of REFERENCE A6: a value changed in the file since ``seen`` overrides the
    runtime one; a value the file did not change keeps its runtime setting."""
    kept = {f: getattr(runtime, f) for f in MERGED_FIELDS if getattr(file, f) == getattr(seen, f)}
    return dataclasses.replace(file, **kept)


@dataclass(eq=False)
class ClientState:
    """A configured client and everything that changes at runtime."""

    config: ClientConfig  # effective values (D-Bus writes replace it)
    file_config: ClientConfig  # the clients.conf values last seen, for precedence on reload
    created: datetime
    enabled: bool
    last_enabled: datetime | None = None
    last_checked_ok: datetime | None = None
    last_checker_status: int = NEVER_CHECKED
    last_checker_signal: int | None = None
    expires: datetime | None = None
    last_approval_request: datetime | None = None
    checker_running: bool = False
    checker_command: str | None = None
    checker_started: datetime | None = None
    checker_next_start: datetime | None = None
    approved: bool | None = None
    approved_until: datetime | None = None
    approvals_pending: int = 0

    @classmethod
    def fresh(cls, config: ClientConfig, now: datetime) -> ClientState:
        """A client seen for the first time; ``start`` schedules it."""
        return cls(
            config=config,
            file_config=config,
            created=now,
            enabled=config.enabled,
            last_enabled=now if config.enabled else None,
        )

    @property
    def name(self) -> str:
        """The client's name (its clients.conf section)."""
        return self.config.name.value

    @property
    def _interval(self) -> timedelta:
        return max(self.config.interval, MIN_INTERVAL)

    def start(self, now: datetime, rng: random.Random) -> None:
        """Server startup: first checker at a random point within the interval (A4).

        ``expires`` becomes ``now + delay + interval`` unless a restored one is later.
        """
        if not self.enabled:
            return
        delay = random_delay(self.config.interval, rng)
        self.checker_next_start = add_time(now, delay)
        candidate = add_time(now, delay + self.config.interval)
        self.expires = candidate if self.expires is None else max(self.expires, candidate)

    def enable(self, now: datetime, cause: str = "") -> list[Effect]:
        """Enable: checker after one interval, expiry after two (A4); ``cause`` is logged."""
        if self.enabled:
            return []
        self.enabled = True
        self.last_enabled = now
        self.checker_next_start = add_time(now, self.config.interval)
        self.expires = add_time(now, 2 * self.config.interval)
        return [Log(logging.INFO, "Enabling client %s: %s", (self.name, cause or "requested"))]

    def disable(self, *, quiet: bool = False, cause: str = "") -> list[Effect]:
        """Disable: stop the checker and every timer; waiting connections get refused."""
        if not self.enabled:
            return []
        out: list[Effect] = (
            []
            if quiet
            else [Log(logging.INFO, "Disabling client %s: %s", (self.name, cause or "requested"))]
        )
        self.enabled = False
        self.expires = None
        self.checker_next_start = None
        out += self.stop_checker()
        if self.approvals_pending:
            out.append(WakeApprovalWaiters(self.name))
        return out

    def runtime_values(self) -> dict[str, str]:
        """The attributes a checker command may name, as the reference prints them (A3)."""
        c = self.config
        return {
            "approval_delay": str(c.approval_delay),
            "approval_duration": str(c.approval_duration),
            "created": _naive_str(self.created),
            "enabled": str(self.enabled),
            "expires": _naive_str(self.expires),
            "key_id": "" if c.key_id is None else str(c.key_id),
            "fingerprint": "" if c.fingerprint is None else str(c.fingerprint),
            "host": c.host,
            "interval": str(c.interval),
            "last_approval_request": _naive_str(self.last_approval_request),
            "last_checked_ok": _naive_str(self.last_checked_ok),
            "last_enabled": _naive_str(self.last_enabled),
            "name": self.name,
            "timeout": str(c.timeout),
            "dbus_object_path": c.name.dbus_path(),
        }

    def start_checker(self, now: datetime) -> list[Effect]:
        """Start a checker unless one runs; a bad template is logged and retried later."""
        if self.checker_running:
            return []
        try:
            command = expand_runtime(self.config.checker, self.runtime_values())
        except CheckerError as exc:
            return [Log(logging.ERROR, "Checker for %s: %s", (self.name, str(exc)))]
        self.checker_running = True
        self.checker_command = command
        self.checker_started = now
        return [
            Log(logging.DEBUG, "Starting checker %r for %s", (command, self.name)),
            StartChecker(self.name, command),
            Signal(self.name, "CheckerStarted", (command,)),
        ]

    def stop_checker(self) -> list[Effect]:
        """Stop the running checker, if any; its exit is not reported."""
        if not self.checker_running:
            return []
        self.checker_running = False
        self.checker_command = None
        self.checker_started = None
        return [StopChecker(self.name)]

    def bump_timeout(self, now: datetime, timeout: timedelta) -> None:
        """Move the expiry to ``now + timeout`` (only while enabled; earlier or later)."""
        if self.enabled:
            self.expires = add_time(now, timeout)

    def checked_ok(self, now: datetime) -> list[Effect]:
        """A successful check (by a checker or ``CheckedOK()``): expiry = now + timeout."""
        self.last_checked_ok = now
        self.last_checker_status = 0
        self.last_checker_signal = None
        self.bump_timeout(now, self.config.timeout)
        return []

    def checker_finished(
        self, returncode: int | None, signal: int | None, now: datetime
    ) -> list[Effect]:
        """Record how the running checker ended; ignored when none is running."""
        if not self.checker_running:
            return []
        command = self.checker_command or ""
        self.checker_running = False
        self.checker_command = None
        self.checker_started = None
        outcome = classify_exit(returncode)
        level, message = CHECKER_LOG[outcome]
        if returncode is not None and outcome is not CheckerOutcome.CRASHED:
            self.last_checker_status = returncode
            self.last_checker_signal = None
            exitcode, waitstatus = returncode, returncode << 8
        else:
            sig = signal if signal is not None else -(returncode or 0)
            self.last_checker_status = CRASHED
            self.last_checker_signal = sig
            exitcode, waitstatus = CRASHED, (CRASHED << 8) | sig
        if outcome is CheckerOutcome.SUCCEEDED:
            self.checked_ok(now)
        return [
            Log(level, message, (self.name,)),
            Signal(self.name, "CheckerCompleted", (exitcode, waitstatus, command)),
        ]

    def reconfigure(self, new: ClientConfig, now: datetime) -> list[Effect]:
        """Adopt new settings: a Timeout change shifts the expiry, an Interval change
        reschedules and starts a checker now (A4)."""
        old, self.config = self.config, new
        out: list[Effect] = []
        if new.timeout != old.timeout and self.enabled and self.expires is not None:
            self.expires = add_time(self.expires, new.timeout - old.timeout)
            if self.expires <= now:
                out += self.disable(cause="its new timeout has already run out")
        if new.interval != old.interval and self.enabled:
            self.checker_next_start = add_time(now, new.interval)
            out += self.start_checker(now)
        return out

    def approve(self, approved: bool, now: datetime) -> list[Effect]:
        """The operator's word, valid until ``now + approval_duration``."""
        self.approved = approved
        self.approved_until = add_time(now, self.config.approval_duration)
        return [WakeApprovalWaiters(self.name)]

    def current_approval(self, now: datetime) -> Approval:
        """The operator's word as it stands at ``now``."""
        if self.approved is None or (
            self.approved_until is not None and now >= self.approved_until
        ):
            return Approval.UNDECIDED
        return Approval.APPROVED if self.approved else Approval.DENIED

    def approval_verdict(self, now: datetime, until: datetime | None) -> Verdict:
        """What a connection of an enabled client does; ``until`` ends its wait (None: not yet)."""
        if self.config.approval_delay <= timedelta(0):
            return Verdict.SEND
        passed = until is not None and now >= until
        verdict = APPROVAL_TABLE[(self.current_approval(now), passed)]
        if isinstance(verdict, Verdict):
            return verdict
        return Verdict.SEND if self.config.approved_by_default else Verdict.TIMED_OUT

    @property
    def checker_deadline(self) -> datetime | None:
        """When a running checker gets stopped."""
        if self.checker_started is None:
            return None
        return add_time(self.checker_started, self.config.timeout)

    def _expiry_cause(self) -> str:
        last = self.last_checked_ok
        since = "never" if last is None else f"last at {last.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        return f"timed out: no successful check within its timeout ({since})"

    def tick(self, now: datetime) -> list[Effect]:
        """Fire every timer due at ``now``: approval reset, expiry, checker kill and start."""
        out: list[Effect] = []
        if self.approved_until is not None and now >= self.approved_until:
            self.approved = None
            self.approved_until = None
        if self.enabled and self.expires is not None and now >= self.expires:
            return self.disable(cause=self._expiry_cause())
        deadline = self.checker_deadline
        if deadline is not None and now >= deadline:
            out.append(Log(logging.WARNING, "Checker for %s timed out; stopping it", (self.name,)))
            out += self.stop_checker()
        nxt = self.checker_next_start
        if self.enabled and nxt is not None:
            if nxt - now > self._interval:
                self.checker_next_start = add_time(now, self._interval)
            elif now >= nxt:
                missed = (now - nxt) // self._interval + 1
                self.checker_next_start = add_time(nxt, missed * self._interval)
                out += self.start_checker(now)
        return out

    def next_deadline(self) -> datetime | None:
        """The earliest pending timer, or None when nothing is scheduled."""
        timers = [self.approved_until, self.checker_deadline]
        if self.enabled:
            timers += [self.expires, self.checker_next_start]
        return min((t for t in timers if t is not None), default=None)

    def rewind_point(self) -> datetime | None:
        """A tick before this (a backward clock jump) pulls the next checker start back to one
        interval away; None when no start is scheduled."""
        if not self.enabled or self.checker_next_start is None:
            return None
        try:
            return self.checker_next_start - self._interval
        except OverflowError:
            return None

    def properties(self) -> dict[str, object]:
        """Every readable D-Bus property of REFERENCE A7, as Python values."""
        return read_all(self)
