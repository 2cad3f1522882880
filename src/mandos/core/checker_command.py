"""Runtime expansion of checker commands (REFERENCE A3).

clients.conf writes ``checker = fping -q -- %%(host)s``; the start-time ConfigParser expansion
turns ``%%`` into ``%``, and this module fills in ``%(host)s`` from the client's attributes at
the moment the checker starts, every value shell-quoted, with Python's own ``%`` operator so that
every quirk of the reference's formatting is kept. The result runs under ``/bin/sh -c``.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Final

from mandos.core.errors import CheckerError

#: The attributes a checker may name (plus ``dbus_object_path`` when D-Bus is on).
RUNTIME_ATTRIBUTES: Final = frozenset(
    {
        "approval_delay",
        "approval_duration",
        "created",
        "enabled",
        "expires",
        "key_id",
        "fingerprint",
        "host",
        "interval",
        "last_approval_request",
        "last_checked_ok",
        "last_enabled",
        "name",
        "timeout",
        "dbus_object_path",
    }
)


def expand_runtime(template: str, values: Mapping[str, str]) -> str:
    """Fill ``%(attr)s`` in ``template`` with shell-quoted ``values``.

    Raises:
        CheckerError: the template names an unknown attribute or is not a valid format.
    """
    quoted = {name: shlex.quote(value) for name, value in values.items()}
    try:
        return template % quoted
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckerError(f"Could not format string {template!r}: {exc}") from exc
