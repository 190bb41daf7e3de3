"""Counters shared by every gateway process: security events, and the association limit.

``multiprocessing.Value`` lives in shared memory, so a counter made by the main process and
handed to worker processes at their start is one counter for the whole appliance.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from typing import Any


class SharedCounter:
    def __init__(self, value: Any | None = None) -> None:
        self._value = value if value is not None else multiprocessing.get_context("spawn").Value("q", 0)

    @property
    def shared(self) -> Any:
        """The underlying shared value, to hand to a worker process."""
        return self._value

    def add(self, amount: int = 1) -> int:
        with self._value.get_lock():
            self._value.value += amount
            return self._value.value

    @property
    def value(self) -> int:
        return int(self._value.value)


class AssociationGate:
    """At most ``limit`` associations at once across all gateway processes."""

    def __init__(self, limit: int, active: SharedCounter | None = None) -> None:
        self.limit = limit
        self.active = active or SharedCounter()

    def try_enter(self) -> bool:
        with self.active.shared.get_lock():
            if self.active.shared.value >= self.limit:
                return False
            self.active.shared.value += 1
            return True

    def leave(self) -> None:
        self.active.add(-1)


@dataclass(frozen=True)
class GatewayCapacity:
    """What the gateway can take now: admitted associations against their limit, connections
    awaiting their association request against their pool, and what has been refused."""

    associations: int
    association_limit: int
    awaiting_request: int
    awaiting_limit: int
    refused_connections: int
    security_events: int

    @property
    def has_room(self) -> bool:
        return self.associations < self.association_limit and self.awaiting_request < self.awaiting_limit
