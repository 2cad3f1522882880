"""Who caused the effects being carried out now: a context variable set around ``apply``.

The core's effects do not say why they happen; the audit trail must (a client disabled by a
D-Bus call of uid 0 is not one disabled by its timeout). The D-Bus adapter and the reload path
set the cause while their effects run; effects applied with no cause set come from the
server's own timers and connections, and the observer names them from what they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cause:
    """``kind`` is ``dbus`` (with the caller's ``uid`` and the ``call``) or ``clients.conf``."""

    kind: str
    uid: int | None = None
    call: str = ""

    def describe(self) -> str:
        """Words for logs and ``mandos-ctl --explain``: ``D-Bus Disable (uid 0)``."""
        if self.kind == "dbus":
            uid = "uid unknown" if self.uid is None else f"uid {self.uid}"
            return f"D-Bus {self.call} ({uid})".replace("  ", " ")
        return self.kind


RELOAD = Cause("clients.conf")

current_cause: ContextVar[Cause | None] = ContextVar("mandos_cause", default=None)


@contextlib.contextmanager
def caused_by(cause: Cause) -> Iterator[None]:
    """Effects applied inside this block are attributed to ``cause``."""
    token = current_cause.set(cause)
    try:
        yield
    finally:
        current_cause.reset(token)
