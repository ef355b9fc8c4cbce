"""Give memory freed by a reconcile back to the operating system.

A full reconcile of a large folder builds big transient structures (the scan, the
state rows, the listing). Python frees them, but glibc's allocator keeps the freed
pages in the process, so an agent that once scanned 100,000 files would sit at its
peak size while idle. `malloc_trim(0)` returns them; elsewhere it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim  # glibc only; musl has none
    except (OSError, AttributeError):
        return None
    return trim


def release_free_memory() -> None:
    """Collect garbage, then hand the allocator's free pages back to the OS."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
