"""Slots of memory shared with forked worker processes, to hand their outputs back without a pipe.

A pool's result travels pickled through a pipe, in 64 KiB pieces that the worker waits on the
parent to read. Here the parent maps one anonymous shared region before its workers fork, so they
share it; it gives each task a slot, the worker writes its output there and returns only its
length, and the parent copies the bytes out and frees the slot. An output larger than a slot goes
through the pipe as before. The region is anonymous memory: nothing on disk, and it goes with the
last process that maps it.
"""

from __future__ import annotations

import mmap

SLOT_BYTES = 8 * 1024 * 1024  # larger outputs (rare: multi-frame objects) take the pipe


class SharedSlots:
    """``count`` slots of ``size`` bytes; taken and given back in the parent, written in a worker."""

    def __init__(self, count: int, size: int = SLOT_BYTES) -> None:
        self._region = mmap.mmap(-1, count * size)  # MAP_SHARED | MAP_ANONYMOUS: shared across fork
        self._size = size
        self._free = list(range(count))

    def take(self) -> int:
        """A free slot (the caller keeps at most ``count`` tasks in flight)."""
        return self._free.pop()

    def give_back(self, slot: int) -> None:
        self._free.append(slot)

    def write(self, slot: int, data: bytes) -> bool:
        """Put ``data`` in ``slot`` (in the worker); False, writing nothing, when it does not fit."""
        if len(data) > self._size:
            return False
        start = slot * self._size
        self._region[start : start + len(data)] = data
        return True

    def read(self, slot: int, length: int) -> bytes:
        """A copy of what the worker wrote in ``slot`` (the slot can be given back after this)."""
        start = slot * self._size
        return self._region[start : start + length]

    def close(self) -> None:
        self._region.close()
