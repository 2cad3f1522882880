"""Carries out the core's effects: checkers, log lines, state saves, wake-ups, bus signals.

The core only *returns* effects; this is the one place that decides how each one happens. A
D-Bus adapter plugs in as an :class:`EventSink` and receives signals and property changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol, assert_never

from mandos.adapters.checkers import CheckerRunner
from mandos.core.effects import (
    Effect,
    Log,
    PropertiesChanged,
    SaveState,
    Signal,
    StartChecker,
    StopChecker,
    WakeApprovalWaiters,
)

log = logging.getLogger("mandos")


class EventSink(Protocol):
    """Receives what the outside world may observe (the D-Bus adapter implements this)."""

    def signal(self, effect: Signal) -> None:
        """Emit a signal of a client (or of the server when ``effect.name`` is None)."""

    def properties_changed(self, effect: PropertiesChanged) -> None:
        """Announce changed client properties."""


class BusService(EventSink, Protocol):
    """An event sink with a connection to close (the D-Bus adapter)."""

    async def supervise(self) -> None:
        """Keep the connection: reconnect (and re-claim the names) whenever it is lost."""

    async def close(self) -> None:
        """Release the bus names and disconnect."""


class EffectRunner:
    """Applies effects in order; never raises for a single failed effect."""

    def __init__(
        self,
        checkers: CheckerRunner,
        request_save: Callable[[], None],
        wake_scheduler: Callable[[], None],
        sinks: Iterable[EventSink] = (),
    ) -> None:
        self._checkers = checkers
        self._request_save = request_save
        self._wake_scheduler = wake_scheduler
        self._sinks = list(sinks)
        self._approval_events: dict[str, asyncio.Event] = {}
        self._watchers: list[Callable[[Effect], None]] = []

    def add_sink(self, sink: EventSink) -> None:
        """Let ``sink`` observe signals and property changes from now on."""
        self._sinks.append(sink)

    def watch(self, watcher: Callable[[Effect], None]) -> None:
        """Show ``watcher`` every effect just before it is carried out (audit, metrics)."""
        self._watchers.append(watcher)

    def approval_event(self, name: str) -> asyncio.Event:
        """The event set at the next approval or denial of client ``name``."""
        event = self._approval_events.get(name)
        if event is None:
            event = self._approval_events[name] = asyncio.Event()
        return event

    async def apply(self, effects: Iterable[Effect]) -> None:
        """Carry out ``effects`` in order."""
        for effect in effects:
            for watcher in self._watchers:
                watcher(effect)
            match effect:
                case StartChecker(name=name, command=command):
                    await self._checkers.start(name, command)
                case StopChecker(name=name):
                    self._checkers.stop(name)
                case Log(level=level, message=message, args=args):
                    log.log(level, message, *args)
                case SaveState():
                    self._request_save()
                case WakeApprovalWaiters(name=name):
                    event = self._approval_events.pop(name, None)
                    if event is not None:
                        event.set()
                case Signal():
                    for sink in self._sinks:
                        sink.signal(effect)
                case PropertiesChanged():
                    for sink in self._sinks:
                        sink.properties_changed(effect)
                case _:
                    assert_never(effect)
        self._wake_scheduler()
