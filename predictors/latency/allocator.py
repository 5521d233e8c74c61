"""Fixed glibc allocator thresholds while timing, so a forward's cost does not depend on the process's past.

By default glibc returns large freed blocks to the system and adapts its thresholds to what the process
has done so far, so a forward paid page faults for its activations, or not, depending on what the
process had allocated before (MobileNetV2: 2,320 per forward; one of its blocks ran 2.3x as long inside
the network as alone: ``experiments/parts_in_network.py``). With fixed thresholds freed memory is kept
and reused, as the allocators PyTorch's CPU tuning guide recommends (jemalloc, tcmalloc) do.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

# glibc allocator thresholds while timing: blocks up to 32 MiB (glibc's largest mmap threshold) come from
# the heap, and the heap is not trimmed below 1 GiB of free memory (freed activations are reused)
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 2**30
ALLOCATOR_HOWTO = ("to time it the same way in your own program, start Python with "
                   f"MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD} MALLOC_TRIM_THRESHOLD_={TRIM_THRESHOLD} "
                   "(glibc then reuses freed activation memory)")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers in glibc's malloc.h
_allocator_steady: bool | None = None


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to fix
        return None


def _fix_thresholds(mallopt: Callable[[int, int], int]) -> bool:
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def steady_allocator(mallopt: Callable[[int, int], int] | None = None) -> bool:
    """Fix glibc's mmap and trim thresholds (:data:`MMAP_THRESHOLD`, :data:`TRIM_THRESHOLD`), once per
    process, so a timing does not depend on what the process allocated before; True when they are fixed.
    ``mallopt``: call this one instead of glibc's (tests)."""
    global _allocator_steady
    if mallopt is not None:
        return _fix_thresholds(mallopt)
    if _allocator_steady is None:
        real = _glibc_mallopt()
        _allocator_steady = real is not None and _fix_thresholds(real)
    return _allocator_steady
