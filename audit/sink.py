"""Where audit events go: a protocol handed to every library, and the sinks that implement it.

The gateway and the appliance depend only on :class:`AuditSink`. Until the tamper-evident log
exists (the audit issue), the appliance records events with :class:`JsonLinesSink`: one JSON
object a line, appended and flushed. Events carry UIDs, AE titles and hosts, never PHI.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Protocol

from audit.events import AuditEvent


class AuditSink(Protocol):
    def emit(self, event: AuditEvent) -> None:
        """Record ``event``. Must not raise into the caller's protocol handler."""


class JsonLinesSink:
    """Appends each event as one JSON line; safe across threads and processes (O_APPEND)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, event: AuditEvent) -> None:
        line = (json.dumps(event.to_dict(), sort_keys=True) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


class MemorySink:
    """Keeps events in a list: for library use without an appliance, and for tests."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self._lock = threading.Lock()

    def emit(self, event: AuditEvent) -> None:
        with self._lock:
            self.events.append(event)
