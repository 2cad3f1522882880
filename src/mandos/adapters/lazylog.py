"""Loggers that import ``logging`` only when a record has somewhere to go.

``logging`` and what it imports (traceback, linecache, tokenize, string, threading) are ~1 MiB
of mandos-client's peak RSS, and a successful ``--connect`` run without ``--debug`` emits no
record at all (docs/performance.md, "Client memory").

Rules of this module:
1. ``get(name)`` stands for ``logging.getLogger(name)``: every call is passed on to it, with the
   caller's frame as the record's origin, so handlers, levels and caplog see no difference.
2. Only a program that calls ``defer_setup`` changes anything: until ``logging`` is imported,
   records below its ``floor`` are dropped here. The first record at or above it imports
   ``logging`` and runs the deferred set-up first. If ``logging`` is already imported when
   ``defer_setup`` is called, or is imported by anyone later, the set-up runs at the next
   record (or at ``setup_now``) and every record is passed on as in rule 1.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:  # collections.abc imports collections (~0.3 MiB of the client's RSS)
    from collections.abc import Callable
    from types import ModuleType

DEBUG, INFO, WARNING, ERROR, CRITICAL = 10, 20, 30, 40, 50

_floor = 0  # records below it are dropped while logging is not imported (rule 2)
_setup: Callable[[], None] | None = None  # deferred by defer_setup, run once


def defer_setup(setup: Callable[[], None], floor: int) -> None:
    """Run ``setup`` (which configures logging) when the first record at ``floor`` or above
    comes; drop the records below it until then. At once if logging is already imported."""
    global _floor, _setup
    if "logging" in sys.modules:
        setup()
        return
    _floor, _setup = floor, setup


def setup_now() -> ModuleType:
    """Import logging and run the deferred set-up, if any (before code that logs directly)."""
    global _floor, _setup
    import logging

    setup, _setup, _floor = _setup, None, 0
    if setup is not None:
        setup()
    return logging


class Logger:
    """``logging.getLogger(name)``, imported when a record is not dropped (rule 2)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _log(self, level: int, msg: str, args: tuple[object, ...], exc_info: bool) -> None:
        if level < _floor and "logging" not in sys.modules:
            return
        # stacklevel 3: the record names our caller, not this method or debug()/info()/...
        setup_now().getLogger(self.name).log(level, msg, *args, exc_info=exc_info, stacklevel=3)

    def debug(self, msg: str, *args: object, exc_info: bool = False) -> None:
        """Log at DEBUG."""
        self._log(DEBUG, msg, args, exc_info)

    def info(self, msg: str, *args: object, exc_info: bool = False) -> None:
        """Log at INFO."""
        self._log(INFO, msg, args, exc_info)

    def warning(self, msg: str, *args: object, exc_info: bool = False) -> None:
        """Log at WARNING."""
        self._log(WARNING, msg, args, exc_info)

    def error(self, msg: str, *args: object, exc_info: bool = False) -> None:
        """Log at ERROR."""
        self._log(ERROR, msg, args, exc_info)

    def critical(self, msg: str, *args: object, exc_info: bool = False) -> None:
        """Log at CRITICAL."""
        self._log(CRITICAL, msg, args, exc_info)


def get(name: str) -> Logger:
    """The logger called ``name`` (rule 1)."""
    return Logger(name)
