"""The audit log, for auditors: search (sortable by every field, JSON or CSV) and verification.

Every search is itself an audit event (Audit Log Used, 110101), naming the auditor and address.
"""

from __future__ import annotations

import base64
import csv
import io
from datetime import datetime
from typing import Any, Literal

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from appliance.admin.audit_reading import COLUMNS, read_log, row_of
from appliance.web.api.deps import AppDep, CurrentCaller
from audit.errors import AuditIntegrityError
from audit.events import Participant
from audit.reader import Filter
from audit.verify import verify_log

router = APIRouter(prefix="/api/audit", tags=["audit"])

SortField = Literal["index", "at", "event", "type", "outcome", "who", "address", "objects", "description"]


class Verification(BaseModel):
    verified: bool
    failure: str | None = None  # what verification found, when it failed
    entries: int = 0
    root: str = ""
    checkpoints: int = 0
    witnessed: int = 0


@router.get("/events", response_model=None)
def search(
    caller: CurrentCaller,
    app: AppDep,
    since: datetime | None = None,
    until: datetime | None = None,
    who: str | None = None,
    patient_id: str | None = None,
    study_uid: str | None = None,
    event_id: str | None = None,
    outcome: int | None = None,
    sort: SortField = "index",
    order: Literal["asc", "desc"] = "asc",
    limit: int = 1000,
    offset: int = 0,
    format: Literal["json", "csv"] = "json",  # noqa: A002 - the query parameter's name
) -> list[dict[str, Any]] | Response:
    wanted = Filter(since, until, who, patient_id, study_uid, event_id, outcome)
    reader = Participant(caller.name, host=caller.address, is_requestor=True, role=caller.role.value)
    entries = read_log(app, reader, wanted, f"audit search over HTTP ({format})")
    rows = sorted((row_of(e) for e in entries), key=lambda r: str(r[sort]) if sort != "index" else r[sort])
    if order == "desc":
        rows.reverse()
    rows = rows[offset : offset + max(0, min(limit, 100000))]
    if format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        return Response(out.getvalue(), media_type="text/csv")
    return rows


@router.get("/verify")
def verify(caller: CurrentCaller, app: AppDep) -> Verification:
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
        verified=True,
        entries=result.entries,
        root=base64.b64encode(result.root).decode(),
        checkpoints=result.checkpoints,
        witnessed=result.witnessed,
    )
