"""Each client's next deadline in a heap, so that finding what is due costs nothing per idle client.

Rules of this module:

1. Two heaps, invalidated lazily: the next deadline of each client (``ClientState.next_deadline``)
   and its rewind point (``ClientState.rewind_point``: a tick before it, after a backward clock
   jump, pulls the checker schedule back). An entry is current while it equals what the dicts
   record for its client; ``update`` pushes a new entry when a value changes and leaves the old
   one to be skipped when it surfaces. Stale entries are compacted away when they outnumber the
   current ones.
2. The owner (the registry) calls ``update`` after anything that may have changed a client's
   timers, and ``forget`` when the client goes.
"""

from __future__ import annotations

import heapq
import itertools
from datetime import UTC, datetime, timedelta
from typing import Final

from mandos.core.client_state import ClientState

_FAR_FUTURE: Final = datetime.max.replace(tzinfo=UTC)


class Timers:
    """The clients' timers; ``due(now)`` costs O(k log n) for the k clients it returns."""

    def __init__(self) -> None:
        self._pushes = itertools.count()
        self._deadlines: list[tuple[datetime, int, ClientState]] = []
        self._rewinds: list[tuple[timedelta, int, ClientState]] = []  # max-heap on the point
        self._deadline: dict[ClientState, datetime] = {}
        self._rewind: dict[ClientState, datetime] = {}

    def update(self, state: ClientState) -> None:
        """Record ``state``'s current timers (after anything may have changed them)."""
        deadline = state.next_deadline()
        if deadline is None:
            self._deadline.pop(state, None)
        elif self._deadline.get(state) != deadline:
            self._deadline[state] = deadline
            heapq.heappush(self._deadlines, (deadline, next(self._pushes), state))
        rewind = state.rewind_point()
        if rewind is None:
            self._rewind.pop(state, None)
        elif self._rewind.get(state) != rewind:
            self._rewind[state] = rewind
            heapq.heappush(self._rewinds, (_FAR_FUTURE - rewind, next(self._pushes), state))
        if len(self._deadlines) + len(self._rewinds) > 4 * len(self._deadline) + 64:
            self._compact()

    def update_all(self, states: list[ClientState]) -> None:
        """``update`` for each of ``states``, the heaps rebuilt once (O(n), not O(n log n))."""
        for state in states:
            deadline = state.next_deadline()
            if deadline is None:
                self._deadline.pop(state, None)
            else:
                self._deadline[state] = deadline
            rewind = state.rewind_point()
            if rewind is None:
                self._rewind.pop(state, None)
            else:
                self._rewind[state] = rewind
        self._compact()

    def forget(self, state: ClientState) -> None:
        """``state`` is gone: its entries become stale."""
        self._deadline.pop(state, None)
        self._rewind.pop(state, None)

    def _compact(self) -> None:
        self._deadlines = [(d, next(self._pushes), s) for s, d in self._deadline.items()]
        self._rewinds = [(_FAR_FUTURE - r, next(self._pushes), s) for s, r in self._rewind.items()]
        heapq.heapify(self._deadlines)
        heapq.heapify(self._rewinds)

    def next_deadline(self) -> datetime | None:
        """The earliest current deadline."""
        heap = self._deadlines
        while heap:
            deadline, _, state = heap[0]
            if self._deadline.get(state) == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def due(self, now: datetime) -> dict[ClientState, bool]:
        """Clients to tick at ``now``: True when a deadline is due, False when only the
        checker schedule must be pulled back. Their entries are consumed: ``update`` them."""
        out: dict[ClientState, bool] = {}
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            deadline, _, state = heapq.heappop(heap)
            if self._deadline.get(state) == deadline:
                del self._deadline[state]
                out[state] = True
        rewinds = self._rewinds
        while rewinds and _FAR_FUTURE - rewinds[0][0] > now:
            key, _, state = heapq.heappop(rewinds)
            if self._rewind.get(state) == _FAR_FUTURE - key:
                del self._rewind[state]
                out.setdefault(state, False)
        return out
