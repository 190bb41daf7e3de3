"""Arrays in their own private anonymous mappings, outside the process's heap.

The kernel backs a page of such a mapping only when it is first written (a read maps its shared
zero page), and the whole mapping goes back to the system when the array is freed, whatever else
the heap holds. Used for the largest block of a series (the float32 volume), which on the heap
needs one free stretch of that size: small blocks that outlive a series (caches, the standard's
decoded tables) split the stretch the previous volume left, so the heap grew by most of a volume
again over the next series. The inference process's allocator now gives every block of 32 MiB or
more a mapping of its own (``appliance.runtime.heap``); the volume's is explicit, so that it does
not depend on how the allocator of the process that builds it is set. Also used for the sign-only
resampling's output, mostly zeros never written (see models.resampling).
"""

from __future__ import annotations

import mmap
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def _mapping(nbytes: int) -> mmap.mmap:
    return mmap.mmap(-1, max(nbytes, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def mapped_array(shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
    """A zero-filled array in its own mapping (which the array keeps)."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    return np.frombuffer(_mapping(count * dtype.itemsize), dtype=dtype, count=count).reshape(shape)


def mapped_tensor(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A zero-filled tensor of ``like``'s dtype and device; on the CPU in its own mapping."""
    import torch  # here: a volume (models.volume) is built without torch, as ``research pull`` does

    count = int(np.prod(shape))
    if like.device.type != "cpu" or count == 0:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    return torch.frombuffer(_mapping(count * like.element_size()), dtype=like.dtype).reshape(shape)
