"""Give the C heap's free memory back to the system after start-up (glibc ``malloc_trim``).

Reading 10,000 clients peaks at ~60 MiB more than the clients then hold; the freed memory stays
in the process (RSS) unless the heap is trimmed. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import gc


def release_free_memory() -> bool:
    """Collect garbage and trim the heap; whether the C library could trim."""
    gc.collect()
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True
