"""Counters shared by every gateway process (security events, the association limit), and the
room an instance needs.

``multiprocessing.Value`` lives in shared memory, so a counter made by the main process and
handed to worker processes at their start is one counter for the whole appliance.
"""

from __future__ import annotations

import multiprocessing
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicom_gateway import status
from dicom_gateway.errors import RejectedInstance


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


class StoreOutcomes:
    """Instances stored, and refused by C-STORE status, counted across every gateway process."""

    STATUSES = (
        status.OUT_OF_RESOURCES,
        status.DATASET_DOES_NOT_MATCH_SOP_CLASS,
        status.CONFLICTING_DUPLICATE,
        status.CANNOT_UNDERSTAND_UNDECODABLE,
        status.CANNOT_UNDERSTAND_MISSING_UID,
        status.PROCESSING_FAILURE,
    )

    def __init__(self, shared: Any | None = None) -> None:
        # [stored, refused with STATUSES[0], ...]; any other status counts with the last
        self._values = (
            shared
            if shared is not None
            else multiprocessing.get_context("spawn").Array("q", len(self.STATUSES) + 1)
        )

    @property
    def shared(self) -> Any:
        return self._values

    def stored(self) -> None:
        with self._values.get_lock():
            self._values[0] += 1

    def refused(self, code: int) -> None:
        slot = self.STATUSES.index(code) if code in self.STATUSES else len(self.STATUSES) - 1
        with self._values.get_lock():
            self._values[slot + 1] += 1

    def counts(self) -> tuple[int, dict[str, int]]:
        """(stored, refused per status as ``0xA700``)."""
        with self._values.get_lock():
            values = list(self._values)
        return values[0], {f"0x{code:04X}": n for code, n in zip(self.STATUSES, values[1:], strict=True)}


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
    stored: int = 0  # instances stored since the start
    refused: dict[str, int] = field(default_factory=dict)  # instances refused, per C-STORE status

    @property
    def has_room(self) -> bool:
        return self.associations < self.association_limit and self.awaiting_request < self.awaiting_limit


def check_room(size: int, max_instance_bytes: int, min_free_bytes: int, store_path: Path) -> None:
    """Refuse (0xA700) an instance over the size limit, or one that would leave the store below its
    free-space reserve: the same check for C-STORE and STOW-RS."""
    if size > max_instance_bytes:
        raise RejectedInstance(
            status.OUT_OF_RESOURCES, f"instance of {size} bytes exceeds the limit of {max_instance_bytes}"
        )
    if shutil.disk_usage(store_path).free - size < min_free_bytes:
        raise RejectedInstance(status.OUT_OF_RESOURCES, "storage below its free-space reserve")
