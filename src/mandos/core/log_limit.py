"""Say a thing once, then again only after a while: for lines a stranger can make us repeat.

An unknown key ID knocking every ten seconds should reach the log once, not 360 times an hour,
but an admin who misspelled a ``key_id`` must see it. The table is bounded so that a peer with
many keys cannot grow it without limit. Time is an argument (the core never reads a clock).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Final

#: How long a key stays quiet after it was logged.
QUIET_FOR: Final = timedelta(hours=1)
#: How many keys are remembered; the one logged longest ago is forgotten first.
REMEMBERED: Final = 1024


class OncePerKey:
    """``first(key, now)`` is True for a key not seen within ``quiet_for``."""

    def __init__(self, quiet_for: timedelta = QUIET_FOR, remembered: int = REMEMBERED) -> None:
        self._quiet_for = quiet_for
        self._remembered = remembered
        self._last: OrderedDict[str, datetime] = OrderedDict()

    def first(self, key: str, now: datetime) -> bool:
        """Whether to log ``key`` now (and, if so, remember that it was logged at ``now``)."""
        last = self._last.get(key)
        if last is not None and timedelta(0) <= now - last < self._quiet_for:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self._remembered:
            self._last.popitem(last=False)
        return True
