"""Imports that leave out what the client never needs.

A module set to None in ``sys.modules`` cannot be imported: a package that treats it as an
optional accelerator (asyncio's ``ssl``, hashlib's ``_hashlib``) then does without it, as it
does in the initramfs, which has neither. The module stays importable afterwards.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: typing (with re) is ~1 MiB of the client's RSS
if TYPE_CHECKING:
    from types import TracebackType


class without:  # not contextlib: it imports functools, collections
    """``with without(blocked, user):`` within the block, ``user`` (if imported there for the
    first time) loads without ``blocked``.

    Nothing changes when either is loaded already: the process has paid for ``blocked``.
    """

    def __init__(self, blocked: str, user: str) -> None:
        self._blocked = blocked
        self._set = user not in sys.modules and blocked not in sys.modules

    def __enter__(self) -> None:
        if self._set:
            sys.modules[self._blocked] = None  # type: ignore[assignment]

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._set:
            del sys.modules[self._blocked]
