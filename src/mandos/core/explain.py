"""Would a client get its secret right now, and if not, why: in words (no I/O, time passed in).

Input is what the server knows: the client's D-Bus properties (``Registry.snapshot``) and
:class:`History`, what the server observed beyond them (when and why the client was last
disabled, when its key last asked, the last line its checker printed). Output is a verdict
and one sentence per fact that matters, the first naming the reason it would not work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from mandos.core.client_state import CRASHED, NEVER_CHECKED
from mandos.core.durations import format_rfc3339

YES: Final = "yes"
AFTER_APPROVAL: Final = "after approval"
NO: Final = "no"


@dataclass(frozen=True, slots=True)
class History:
    """What the server saw of one client beyond its properties (None: not seen)."""

    disabled_at: datetime | None = None
    disabled_by: str | None = None
    last_request: datetime | None = None
    last_request_address: str | None = None
    last_outcome: str | None = None
    checker_output: str | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    """``verdict`` is YES, AFTER_APPROVAL or NO; ``reasons`` are sentences, worst first."""

    name: str
    verdict: str
    reasons: tuple[str, ...]


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, datetime) else "never"


def _ago(value: datetime, now: datetime) -> str:
    delta = max(timedelta(0), now - value)
    return f"{format_rfc3339(timedelta(seconds=int(delta.total_seconds())))} ago"


def _checker(props: Mapping[str, object], history: History) -> list[str]:
    status = props.get("LastCheckerStatus")
    command = props.get("Checker")
    words = {NEVER_CHECKED: "has not run yet", CRASHED: "was killed by a signal (crashed?)"}
    said = words.get(status) if isinstance(status, int) else None
    if said is None:
        said = f"last exited with status {status}"
    out = [f"its checker {command!r} {said}"]
    if history.checker_output:
        out.append(f"the checker's last output line: {history.checker_output!r}")
    out.append(f"the last successful check was {_when(props.get('LastCheckedOK'))}")
    return out


def explain(props: Mapping[str, object], history: History, now: datetime) -> Explanation:
    """Explain client ``props["Name"]`` at ``now``."""
    name = str(props.get("Name", "?"))
    reasons: list[str] = []
    verdict = YES
    if not props.get("Enabled"):
        verdict = NO
        since = ""
        if history.disabled_at is not None:
            since = f" since {_when(history.disabled_at)} ({_ago(history.disabled_at, now)})"
        by = f", by {history.disabled_by}" if history.disabled_by else ""
        reasons.append(f"{name} is disabled{since}{by}")
        reasons += _checker(props, history)
    else:
        expires = props.get("Expires")
        reasons.append(f"{name} is enabled; it expires at {_when(expires)} unless a check succeeds")
        reasons += _checker(props, history)[1:] if history.checker_output else []
    delay = props.get("ApprovalDelay")
    if isinstance(delay, timedelta) and delay > timedelta(0):
        by_default = bool(props.get("ApprovedByDefault"))
        then = "sent" if by_default else "refused"
        reasons.append(
            f"approval is required: a request waits {format_rfc3339(delay)} for an operator"
            f" (mandos-ctl --approve/--deny), then the secret is {then} by default"
        )
        if verdict == YES:
            verdict = YES if by_default else AFTER_APPROVAL
    if props.get("ApprovalPending"):
        reasons.append("a request is waiting for approval right now")
    key_id = props.get("KeyID") or props.get("Fingerprint")
    if history.last_request is None:
        reasons.append(
            f"key ID {key_id} has not asked since the server started"
            " (is the client running, and does it use this key?)"
        )
    else:
        where = f" from {history.last_request_address}" if history.last_request_address else ""
        outcome = f": {history.last_outcome}" if history.last_outcome else ""
        reasons.append(f"the key last asked {_when(history.last_request)}{where}{outcome}")
    return Explanation(name, verdict, tuple(reasons))
