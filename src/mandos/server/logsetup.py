"""Logging as the reference does it: syslog (facility DAEMON), plus the console in debug mode
(or when there is no syslog socket, as in a container).

Syslog lines read ``Mandos [PID]: LEVEL: message``, or ``Mandos (NAME) [PID]: ...`` with a
non-default service name; the console adds a timestamp. Messages never carry secrets.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from mandos.core.config import DEFAULT_SERVICENAME, ServerConfig

LEVELS = {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}


def _prefix(servicename: str) -> str:
    if servicename == DEFAULT_SERVICENAME:
        return "Mandos"
    return f"Mandos ({servicename})"


def configure_logging(config: ServerConfig, *, to_syslog: bool = True) -> None:
    """Send the ``mandos`` loggers to syslog and, when debugging, to stderr."""
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
        syslog.setFormatter(
            logging.Formatter(f"{prefix} [%(process)d]: %(levelname)s: %(message)s")
        )
        root.addHandler(syslog)
    if config.debug or not use_syslog:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(
            logging.Formatter(f"%(asctime)s {prefix} [%(process)d]: %(levelname)s: %(message)s")
        )
        root.addHandler(console)
