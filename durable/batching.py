"""Group commit's first step: take one item and everything else already queued behind it."""

from __future__ import annotations

import queue
from typing import TypeVar

T = TypeVar("T")


def take_batch(source: queue.Queue[T | None], first: T, limit: int | None = None) -> list[T]:
    """``first`` plus whatever is queued now, up to ``limit`` items; a ``None`` (the stop
    sentinel) met on the way is put back for the caller's next ``get``."""
    batch = [first]
    while limit is None or len(batch) < limit:
        try:
            item = source.get_nowait()
        except queue.Empty:
            break
        if item is None:
            source.put(None)
            break
        batch.append(item)
    return batch
