"""The audit log, for auditors: search (sortable by every field, JSON or CSV) and verification.

Every search is itself an audit event (Audit Log Used, 110101), naming the auditor and address.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response

from appliance.admin import audit_reading
from appliance.admin.audit_reading import verification
from appliance.web.api.deps import AppDep, CurrentCaller
from audit.reader import Filter

router = APIRouter(prefix="/api/audit", tags=["audit"])

SortField = Literal["index", "at", "event", "type", "outcome", "who", "address", "objects", "description"]


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
    reader = caller.participant
    rows = audit_reading.search(app, reader, wanted, sort, order, f"audit search over HTTP ({format})")
    rows = rows[offset : offset + max(0, min(limit, 100000))]
    if format == "csv":
        return Response(audit_reading.as_csv(rows), media_type="text/csv")
    return rows


@router.get("/verify")
def verify(caller: CurrentCaller, app: AppDep) -> dict[str, Any]:
    """The log's Merkle tree recomputed, every checkpoint's signature and the witness checked."""
    return asdict(verification(app))
