"""Reading the audit log, for the CLI and the auditors' API alike: every read is itself an event.

Entries can be sorted by any of their fields (ONC 170.315(d)(10): an audit report sortable by every
field); the flat row form is what CSV exports and tables show.
"""

from __future__ import annotations

from typing import Any

from appliance.context import Appliance
from audit.events import Action, AuditEvent, EventID, Outcome, Participant
from audit.reader import Filter, read_entries

COLUMNS = ["index", "at", "event", "type", "outcome", "who", "address", "objects", "description"]


def row_of(entry: dict[str, Any]) -> dict[str, Any]:
    requestors = [p for p in entry["participants"] if p.get("is_requestor")]
    return {
        "index": entry["index"],
        "at": entry["at"],
        "event": entry["event"],
        "type": entry.get("type") or "",
        "outcome": entry["outcome"],
        "who": " ".join(p["user_id"] for p in requestors),
        "address": " ".join(p.get("host") or "" for p in requestors).strip(),
        "objects": " ".join(f"{o['kind']}={o['id']}" for o in entry["objects"]),
        "description": entry["description"],
    }


def read_log(app: Appliance, reader: Participant, wanted: Filter, how: str) -> list[dict[str, Any]]:
    """The entries matching ``wanted``; the read is recorded as Audit Log Used (110101)."""
    directory = app.settings.path(app.settings.audit.directory)
    entries = [e for e in read_entries(directory, app.audit_key) if wanted.matches(e)]
    app.audit.emit(
        AuditEvent(
            event_id=EventID.AUDIT_LOG_USED,
            action=Action.READ,
            outcome=Outcome.SUCCESS,
            participants=(reader,),
            description=f"{how}: {len(entries)} entries",
        )
    )
    return entries
