"""The names in a plugins.d directory that are never plugins."""

from __future__ import annotations

import pytest

from mandos.initramfs.plugindir import is_skipped_name


@pytest.mark.parametrize(
    ("name", "skipped"),
    [
        (".hidden", True),
        ("#autosave#", True),
        ("backup~", True),
        ("x.dpkg-new", True),
        ("x.dpkg-old", True),
        ("x.dpkg-bak", True),
        ("x.dpkg-divert", True),
        ("mandos-client", False),
        ("a#b", False),
        ("x.dpkg-dist", False),
    ],
)
def test_skip_names(name: str, skipped: bool) -> None:
    assert is_skipped_name(name) is skipped
