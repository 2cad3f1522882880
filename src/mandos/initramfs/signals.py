"""The signal calls of mandos-client's boot path, without the ``signal`` module.

``signal`` wraps CPython's built-in ``_signal`` to give signal numbers and handlers as enum
members; importing ``enum`` (with ``functools`` and ``collections``) is ~0.9 MiB of the
client's peak memory (docs/performance.md, "Client memory"). ``_signal`` is always loaded (the
interpreter installs its SIGINT handler with it) and has the same calls with plain ints;
typeshed describes only ``signal``, so this module gives them their types.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # see the docstring

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType
    from typing import Final, TypeAlias

    Handler: TypeAlias = Callable[[int, FrameType | None], object] | int | None

SIGTERM: Final[int] = _signal.SIGTERM
SIGINT: Final[int] = _signal.SIGINT
SIGHUP: Final[int] = _signal.SIGHUP
SIG_DFL: Final[int] = _signal.SIG_DFL


def handle(signum: int, handler: Handler) -> Handler:
    """``signal.signal``: set ``signum``'s handler; the previous one (to put back later)."""
    previous: Handler = _signal.signal(signum, handler)
    return previous


def unblock(signum: int) -> None:
    """Take ``signum`` out of this thread's blocked signals (``signal.pthread_sigmask``)."""
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [signum])
