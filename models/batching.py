"""Dynamic batching: the sliding windows of several series through the network in one call.

Each series runs its own sliding-window inference (in its own thread); where that inference would
call the network with its batch of windows, :class:`WindowBatcher` holds the batch until every
other series still running has handed in one too, or until ``wait_seconds`` has passed (the
latency a series may lose to another), then runs them as one batch and gives each its own slice
of the output. A GPU runs one batch of 16 windows in far less than four batches of 4; the series'
own steps (window extraction, blending, postprocessing) overlap the network meanwhile. Only
batches of the same window shape are joined (one batcher per network; windows of one inferer).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(eq=False)
class _Call:
    windows: torch.Tensor
    output: torch.Tensor | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class WindowBatcher:
    """The network, shared by ``callers`` series inferred at once (see the module's docstring)."""

    network: Callable[..., Any]
    callers: int
    wait_seconds: float = 0.05
    batches: list[int] = field(default_factory=list)  # windows per network call, in order
    _pending: list[_Call] = field(default_factory=list)
    _condition: threading.Condition = field(default_factory=threading.Condition)

    def leave(self) -> None:
        """A series is done: the others no longer wait for its windows."""
        with self._condition:
            self.callers -= 1
            self._condition.notify_all()

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        call = _Call(windows)
        deadline = time.monotonic() + self.wait_seconds
        with self._condition:
            self._pending.append(call)
            self._condition.notify_all()
            while not call.done:
                if call not in self._pending:  # another series' thread is running it
                    self._condition.wait()
                elif len(self._pending) >= self.callers or time.monotonic() >= deadline:
                    batch, self._pending = self._pending, []
                    self._condition.release()  # the others hand in their next windows meanwhile
                    try:
                        self._run(batch)
                    finally:
                        self._condition.acquire()
                        self._condition.notify_all()
                else:
                    self._condition.wait(deadline - time.monotonic())
        if call.error is not None:
            raise call.error
        assert call.output is not None
        return call.output

    def _run(self, batch: list[_Call]) -> None:
        """One network call for the whole batch (grouped by window shape), each its slice."""
        for shape in dict.fromkeys(call.windows.shape[1:] for call in batch):
            group = [call for call in batch if call.windows.shape[1:] == shape]
            sizes = [call.windows.shape[0] for call in group]
            self.batches.append(sum(sizes))
            try:
                joined = group[0].windows if len(group) == 1 else torch.cat([c.windows for c in group])
                output = self.network(joined)
                if not isinstance(output, torch.Tensor):
                    raise TypeError(
                        f"batched windows need a network that returns one tensor, not {type(output)}"
                    )
                for call, part in zip(group, torch.split(output, sizes), strict=True):
                    call.output = part
            except BaseException as exc:  # each series raises it in its own thread
                for call in group:
                    call.error = exc
            for call in group:
                call.done = True
