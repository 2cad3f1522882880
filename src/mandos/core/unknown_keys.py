"""Key IDs that asked for a secret but belong to no client: bounded, newest kept (no I/O).

An admin enrolling a machine runs ``mandos-ctl --unknown`` and sees its key ID arrive. The
tracker keeps at most ``capacity`` keys; when full, the one seen longest ago goes, so a flood
of random keys costs bounded memory and never hides the newest arrivals.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Final

DEFAULT_CAPACITY: Final = 256


@dataclass(frozen=True, slots=True)
class UnknownKey:
    """One stranger: its key ID, the last address it came from, when and how often."""

    key_id: str
    address: str
    first_seen: datetime
    last_seen: datetime
    count: int


class UnknownKeys:
    """The most recently seen unknown key IDs, at most ``capacity`` of them."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._seen: OrderedDict[str, UnknownKey] = OrderedDict()

    def saw(self, key_id: str, address: str, now: datetime) -> bool:
        """Count one request of ``key_id`` from ``address``; True if it is new (log it once)."""
        old = self._seen.pop(key_id, None)
        if old is None:
            self._seen[key_id] = UnknownKey(key_id, address, now, now, 1)
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            return True
        self._seen[key_id] = UnknownKey(key_id, address, old.first_seen, now, old.count + 1)
        return False

    def forget(self, key_id: str) -> None:
        """Drop ``key_id`` (it has been enrolled)."""
        self._seen.pop(key_id, None)

    def get(self, key_id: str) -> UnknownKey | None:
        """What is known about ``key_id``, or None."""
        return self._seen.get(key_id)

    def entries(self) -> list[UnknownKey]:
        """Every remembered key, the most recently seen first."""
        return list(reversed(self._seen.values()))

    def __len__(self) -> int:
        return len(self._seen)
