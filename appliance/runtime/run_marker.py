"""Whether the last ``appliance serve`` ended cleanly: a marker written at start, removed at a clean stop.

A marker found at start means the previous run was killed or crashed. The audit log may then
end in entries no signed checkpoint covers yet (at most ``audit.checkpoint_seconds`` of them);
the new run records that, and how far the log had been checkpointed, as its first audit event.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from audit.log import CHECKPOINTS, ENTRIES, read_records
from durable import write_durably

MARKER = "serving"


@dataclass(frozen=True)
class UncleanStop:
    entries: int  # in the log now
    checkpointed: int  # covered by the newest signed checkpoint

    def describe(self) -> str:
        return (
            f"the previous run ended unclean; the audit log held {self.entries} entries, "
            f"{self.checkpointed} of them under a signed checkpoint"
        )


def start_run(audit_directory: Path) -> UncleanStop | None:
    """Mark this run as serving; return what the previous run left if it did not stop cleanly."""
    marker = audit_directory / MARKER
    unclean = None
    if marker.exists():
        notes = sorted((audit_directory / CHECKPOINTS).glob("*.note"))
        checkpointed = int(notes[-1].stem) if notes else 0
        entries = sum(1 for _ in read_records(audit_directory / ENTRIES))
        unclean = UncleanStop(entries, checkpointed)
    write_durably(marker, str(os.getpid()).encode())
    return unclean


def stop_run(audit_directory: Path) -> None:
    """This run stopped cleanly (its audit log closed and checkpointed)."""
    (audit_directory / MARKER).unlink(missing_ok=True)
