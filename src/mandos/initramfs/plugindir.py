"""Which names in a plugins.d directory are never plugins (REFERENCE A13).

plugin-runner skips them when it starts plugins, and the installer of the plugin directories
(``mandos.plugins.layout``) skips them when it copies the administrator's overrides.
"""

from __future__ import annotations

import fnmatch
from typing import Final

SKIP_PATTERNS: Final = (
    ".*",
    "#*#",
    "*~",
    "*.dpkg-new",
    "*.dpkg-old",
    "*.dpkg-bak",
    "*.dpkg-divert",
)


def is_skipped_name(name: str) -> bool:
    """True for backup, hidden and dpkg leftover names that are never plugins."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in SKIP_PATTERNS)
