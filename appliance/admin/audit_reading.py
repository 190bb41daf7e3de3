"""Reading the audit log, for the CLI, the auditors' API and their page alike: every read is
itself an event; verification and inclusion proofs read only what an outside verifier could.

Entries can be sorted by any of their fields (ONC 170.315(d)(10): an audit report sortable by every
field); the flat row form is what CSV exports and tables show.
"""

from __future__ import annotations

import base64
import csv
import io
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from appliance.config import Settings
from appliance.context import Appliance
from appliance.errors import NotFound
from audit import merkle
from audit.errors import AuditIntegrityError
from audit.events import Action, AuditEvent, EventID, Outcome, Participant
from audit.reader import Filter, read_entries
from audit.verify import leaf_hashes, verify_log

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


def search(
    app: Appliance,
    reader: Participant,
    wanted: Filter,
    sort: str = "index",
    order: str = "asc",
    how: str = "",
) -> list[dict[str, Any]]:
    """The matching entries as rows, sorted by any column (the read audited, as ``read_log``)."""
    rows = sorted(
        (row_of(e) for e in read_log(app, reader, wanted, how)),
        key=lambda r: str(r[sort]) if sort != "index" else r[sort],
    )
    return rows[::-1] if order == "desc" else rows


def as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@dataclass(frozen=True)
class Verification:
    verified: bool
    failure: str | None = None  # what verification found, when it failed
    entries: int = 0
    root: str = ""
    checkpoints: int = 0
    witnessed: int = 0


def verification(app: Appliance) -> Verification:
    """The log's Merkle tree recomputed, every checkpoint's signature and the witness checked."""
    settings = app.settings
    public_key = load_pem_public_key(app.signing_public_key_path.read_bytes())
    try:
        result = verify_log(
            settings.path(settings.audit.directory),
            public_key,  # type: ignore[arg-type]
            settings.audit.origin,
            settings.path(settings.audit.witness),
            None,
        )
    except AuditIntegrityError as failure:
        return Verification(verified=False, failure=str(failure))
    return Verification(
        True,
        None,
        result.entries,
        base64.b64encode(result.root).decode(),
        result.checkpoints,
        result.witnessed,
    )


def inclusion_proof(settings: Settings, index: int) -> dict[str, Any]:
    """An RFC 6962 inclusion proof of entry ``index`` in the newest checkpoint."""
    directory = settings.path(settings.audit.directory)
    notes = sorted((directory / "checkpoints").glob("*.note"))
    if not notes:
        raise NotFound("no checkpoint yet; a running appliance writes one within a minute")
    note = notes[-1].read_text()
    size = int(note.split("\n")[1])
    hashes = leaf_hashes(directory)[:size]
    if not 0 <= index < size:
        raise NotFound(f"entry {index} is not covered by the newest checkpoint (size {size})")

    def encode(value: bytes) -> str:
        return base64.b64encode(value).decode()

    return {
        "leaf_index": index,
        "tree_size": size,
        "leaf_hash": encode(hashes[index]),
        "proof": [encode(h) for h in merkle.inclusion_proof(hashes, index)],
        "root": encode(merkle.root(hashes)),
        "checkpoint": note,
    }
