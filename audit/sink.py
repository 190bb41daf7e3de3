"""Where audit events go: a protocol handed to every library, and the sinks that implement it.

The gateway and the appliance depend only on :class:`AuditSink`; the appliance hands in its
encrypted, tamper-evident :class:`audit.log.AuditLog`.
"""

from __future__ import annotations

import threading
from typing import Protocol

from audit.events import AuditEvent


class AuditSink(Protocol):
    def emit(self, event: AuditEvent) -> None:
        """Record ``event``. Must not raise into the caller's protocol handler."""

    def flush(self, timeout: float = 30.0) -> None:
        """Return once every event emitted so far is durable; raise if it cannot be made so."""


class MemorySink:
    """Keeps events in a list: for library use without an appliance, and for tests."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self._lock = threading.Lock()

    def emit(self, event: AuditEvent) -> None:
        with self._lock:
            self.events.append(event)

    def flush(self, timeout: float = 30.0) -> None:
        """Nothing to wait for: the list holds every event at once."""
