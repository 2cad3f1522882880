"""The listening socket systemd passes (socket activation, sd_listen_fds(3)) or ``--socket FD``.

systemd hands sockets over as file descriptors 3, 4, ... and says so with ``LISTEN_PID`` (the
PID they are meant for) and ``LISTEN_FDS`` (how many). The variables are removed once read, so
that no checker mistakes them for its own. The server listens on one socket: the first one, as
if given as ``--socket 3``; more than one is a configuration error. An explicit ``--socket``
(or ``socket =`` in mandos.conf) wins. Either way the descriptor is made non-inheritable, as
Mandos 1.8.18 does, so that checkers and their children never hold the listening socket.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import MutableMapping
from typing import Final

from mandos.core.errors import ConfigError

#: The first descriptor systemd passes (SD_LISTEN_FDS_START).
LISTEN_FDS_START: Final = 3


def passed_socket_count(environ: MutableMapping[str, str], pid: int) -> int:
    """How many sockets systemd passed to process ``pid`` (0: none); unsets the variables."""
    listen_pid = environ.pop("LISTEN_PID", None)
    count = environ.pop("LISTEN_FDS", None)
    environ.pop("LISTEN_FDNAMES", None)
    if listen_pid is None or count is None or listen_pid.strip() != str(pid):
        return 0
    try:
        n = int(count)
    except ValueError:
        raise ConfigError(f"LISTEN_FDS: {count!r} is not a number") from None
    if n < 0:
        raise ConfigError(f"LISTEN_FDS: {count!r} is not a number of sockets")
    return n


def activation_socket(environ: MutableMapping[str, str], pid: int) -> int | None:
    """The descriptor of the socket systemd passed us, or None; more than one is an error."""
    n = passed_socket_count(environ, pid)
    if n > 1:
        raise ConfigError(f"systemd passed {n} sockets (LISTEN_FDS); mandos listens on one")
    return LISTEN_FDS_START if n == 1 else None


def keep_private(fd: int) -> None:
    """Make the inherited listening descriptor close on exec (checkers must not hold it).

    A descriptor that is not open is left to the listener, which refuses it in one line.
    """
    with contextlib.suppress(OSError):
        os.set_inheritable(fd, False)
