"""The memory of the inference process (a series' working set kept between its stages, returned
after) and of the gateway workers (the blocks of each received instance, reused).

A series allocates the same blocks again and again (the sliding window's activations for every
batch of windows). With glibc's defaults each block above its (moving) mmap threshold is a fresh
mapping, and every thread has its own arena, so memory freed by the preparing thread is not reused
by the network's: the kernel zero-fills hundreds of megabytes of new pages per series, which
costs the network stage page faults and time.

:func:`keep_freed_memory` makes the process serve every block under 32 MiB from one heap that is
not trimmed as blocks are freed (the inference process; a gateway process trims it above 64 MiB
free), and every larger block from a mapping of its own.
:func:`return_freed_memory` hands the heap's free part back (``malloc_trim``), which the process
does once it has been idle for a while, and as it starts to prepare each series: the blocks a
series needs fit the previous series' free memory only in part (small blocks that outlive a series
split it), so keeping it through the next series held both and raised the peak. The large blocks
are a series' volume-sized tensors (the float32 volume, the resampled image, the sliding window's
output and count map, the margin, the labels), made once or twice per stage: in the heap, where
each lands depends on the holes the last ones left, and a stage's peak on that; in their own
mappings each is returned as it is freed, and the peak is what the stage holds. Elsewhere than
glibc both do nothing. ``docs/fast-paths.md`` gives the figures.
"""

from __future__ import annotations

import ctypes
from typing import Any

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_OWN_MAPPING = 32 * 2**20  # the largest fixed mmap threshold glibc takes on 64-bit systems
_NEVER = 2**31 - 1  # the largest trim threshold mallopt takes


def _glibc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_LIBC = _glibc()


def keep_freed_memory(trim_above: int = _NEVER) -> None:
    """One arena for every thread, blocks under 32 MiB from it, larger ones from their own mappings,
    and the heap's free top handed back only once it is over ``trim_above`` bytes (by default,
    never). Call before the process starts its threads (each would get an arena).

    A gateway worker calls it too: each instance it receives is a few blocks of half a megabyte or
    more (PDU bodies, the data set, the Part 10 file, its ciphertext), which glibc would otherwise
    map afresh and the kernel zero-fill each time."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, 1)
        _LIBC.mallopt(_M_MMAP_THRESHOLD, _OWN_MAPPING)  # a fixed threshold: glibc no longer moves it
        _LIBC.mallopt(_M_TRIM_THRESHOLD, trim_above)


def return_freed_memory() -> None:
    """Hand the heap's free pages back to the system, so that an idle process does not hold them."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
