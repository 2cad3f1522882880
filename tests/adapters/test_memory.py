from __future__ import annotations

import gc
import platform

from mandos.adapters import memory
from mandos.adapters.memory import defer_collection, release_free_memory, resume_collection


def test_release_free_memory_trims_on_glibc() -> None:
    assert release_free_memory() is (platform.libc_ver()[0] == "glibc")


def test_start_up_defers_collection_then_freezes_what_it_built() -> None:
    frozen = gc.get_freeze_count()
    try:
        defer_collection()
        assert not gc.isenabled()
        built = [[i] for i in range(1000)]
        release_free_memory()
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(built)
    finally:
        gc.unfreeze()
        gc.enable()


def test_a_failed_start_up_resumes_collection() -> None:
    defer_collection()
    resume_collection()
    assert gc.isenabled()
    assert not memory._deferred
    release_free_memory()  # nothing deferred: freezes nothing
    assert gc.isenabled()
