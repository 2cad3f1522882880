from __future__ import annotations

import platform

from mandos.adapters.memory import release_free_memory


def test_release_free_memory_trims_on_glibc() -> None:
    assert release_free_memory() is (platform.libc_ver()[0] == "glibc")
