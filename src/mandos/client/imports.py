"""Imports that leave out what the client never needs.

A module set to None in ``sys.modules`` cannot be imported: a package that treats it as an
optional accelerator (asyncio's ``ssl``, hashlib's ``_hashlib``) then does without it, as it
does in the initramfs, which has neither. The module stays importable afterwards.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def without(blocked: str, user: str) -> Iterator[None]:
    """Within the block, ``user`` (if imported there for the first time) loads without ``blocked``.

    Nothing changes when either is loaded already: the process has paid for ``blocked``.
    """
    if user in sys.modules or blocked in sys.modules:
        yield
        return
    sys.modules[blocked] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        del sys.modules[blocked]
