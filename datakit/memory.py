"""Keep freed memory from staying in the process: glibc's allocator settings and trims between steps.

glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which large NumPy/SciPy
arrays come from the heap and their pages stay resident after they are freed: a stage's freed pair tables then
look like live memory to the OS, and each later step's peak starts from the previous step's high-water mark
(measured on the leakage stage at 113K cases: the metadata layers, which allocate nothing, sat at the near
layer's 3.1 GB). `tune_allocator` fixes the threshold at 1 MiB, so blocks that large are mapped and unmapped
each time; `release` hands free heap pages back (`malloc_trim`) after a step. Both are no-ops off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 - glibc only (musl has no mallopt/malloc_trim)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@functools.cache
def tune_allocator() -> bool:
    """Fix glibc's mmap threshold (and the trim threshold beside it); True when it applied. Once per process."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, 4 * MMAP_THRESHOLD)
    )


def release() -> None:
    """Return the heap's free pages to the OS (after a step that allocated and freed a lot)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
