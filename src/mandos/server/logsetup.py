"""Logging as the reference does it: syslog (facility DAEMON), plus the console in debug mode
(or when there is no syslog socket, as in a container).

Syslog lines read ``Mandos [PID]: LEVEL: message``, or ``Mandos (NAME) [PID]: ...`` with a
non-default service name; the console adds a timestamp. Messages never carry secrets.

A storm logs one line per secret sent, so a line is made as cheaply as the same text allows
(docs/performance.md, "CPU per connection"): records do not look up the caller's file and line,
the thread or the multiprocessing name (no format shows them), and the console's timestamp text
is made once a second.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from pathlib import Path

from mandos.core.config import DEFAULT_SERVICENAME, ServerConfig

LEVELS = {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}


def _prefix(servicename: str) -> str:
    if servicename == DEFAULT_SERVICENAME:
        return "Mandos"
    return f"Mandos ({servicename})"


class LineFormatter(logging.Formatter):
    """``logging.Formatter``'s text, with the date and time part made once per second."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._second: int | None = None
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The base class's text; without ``datefmt``, made once per second."""
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return f"{self._second_text},{int(record.msecs):03d}"  # default_msec_format


def _cheap_records() -> None:
    """Leave out of every record what no format here shows (logging's documented switches)."""
    logging._srcfile = None  # no caller's file, function, line
    logging.logThreads = False
    logging.logMultiprocessing = False


def configure_logging(config: ServerConfig, *, to_syslog: bool = True) -> None:
    """Send the ``mandos`` loggers to syslog and, when debugging, to stderr."""
    _cheap_records()
    root = logging.getLogger("mandos")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    if config.debug:
        level = logging.DEBUG
    elif config.debuglevel:
        level = logging.getLevelName(config.debuglevel.upper())
    else:  # INFO: what the server does (start-up, secrets sent, refusals, enable/disable)
        level = logging.INFO
    root.setLevel(level)
    root.propagate = False
    prefix = _prefix(config.servicename)
    use_syslog = to_syslog and Path("/dev/log").exists()
    if use_syslog:
        syslog = logging.handlers.SysLogHandler(
            address="/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON
        )
        syslog.setFormatter(LineFormatter(f"{prefix} [%(process)d]: %(levelname)s: %(message)s"))
        root.addHandler(syslog)
    if config.debug or not use_syslog:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(
            LineFormatter(f"%(asctime)s {prefix} [%(process)d]: %(levelname)s: %(message)s")
        )
        root.addHandler(console)
