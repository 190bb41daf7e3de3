"""A background thread that runs one step every few seconds and survives the step failing.

``wake()`` runs the next step at once: a stage that has just handed work on (a series complete, a
result queued) wakes the next one, so the interval is only the fallback for work found otherwise.
A step that knows when its next work falls due returns :class:`NextPassIn`, and the next pass runs
then (never later than the interval): it need neither poll often nor be late.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

_PAST_DUE = 0.01  # seconds


@dataclass(frozen=True)
class NextPassIn:
    seconds: float


class Periodic:
    def __init__(self, name: str, interval: float, step: Callable[[threading.Event], object]) -> None:
        self.name = name
        self.interval = interval
        self.step = step
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Run the next step now instead of at the end of the interval."""
        self._wake.set()

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        wait = 0.0  # the first pass at once: work may have fallen due while the appliance was down
        while True:
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            wait = self.interval
            try:
                result = self.step(self._stop)
            except Exception as exc:  # a bad pass (or a database hiccup) must not end the thread
                log.error("%s pass failed (%s)", self.name, type(exc).__name__)
                continue
            if isinstance(result, NextPassIn):  # a little past the due time, so the pass finds it due
                wait = min(max(result.seconds, 0.0) + _PAST_DUE, self.interval)
