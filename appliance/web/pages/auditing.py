"""The auditors' pages: the audit log with every filter of ``audit list``, sortable by every column
and exported as CSV; integrity (verification, and the inclusion proof of a chosen entry); the
break-glass review queue. Every read of the log is itself an Audit Log Used event."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from appliance.access import break_glass
from appliance.admin.audit_reading import COLUMNS, as_csv, inclusion_proof, search, verification
from appliance.context import Appliance
from appliance.web.api.deps import AppDep, Caller, CurrentCaller
from appliance.web.pages.rendering import render
from audit.reader import Filter

router = APIRouter(include_in_schema=False)


class AuditView(BaseModel):
    """The audit page's search: every filter of ``audit list``, the sort, CSV or a table."""

    since: str = ""
    until: str = ""
    who: str = ""
    patient_id: str = ""
    study_uid: str = ""
    event_id: str = ""
    outcome: str = ""
    sort: str = "index:desc"
    format: str = "table"

    def wanted(self) -> Filter:
        def moment(value: str) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        return Filter(
            moment(self.since), moment(self.until), self.who or None, self.patient_id or None,
            self.study_uid or None, self.event_id or None, int(self.outcome) if self.outcome else None,
        )  # fmt: skip


def _audit(request: Request, caller: Caller, app: Appliance, view: AuditView) -> Response:
    reader = caller.participant
    key, _, order = view.sort.partition(":")
    key = key if key in COLUMNS else "index"
    rows = search(app, reader, view.wanted(), key, order, f"audit page ({view.format})")
    if view.format == "csv":
        headers = {"Content-Disposition": 'attachment; filename="audit.csv"', "Cache-Control": "no-store"}
        return Response(as_csv(rows), media_type="text/csv", headers=headers)
    return render(request, "audit.html", rows=rows[:500], columns=COLUMNS, view=view, sort=key, order=order)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, caller: CurrentCaller, app: AppDep) -> Response:
    return _audit(request, caller, app, AuditView())


@router.post("/audit")
def audit_search(
    request: Request, caller: CurrentCaller, app: AppDep, view: Annotated[AuditView, Form()]
) -> Response:
    """The search comes in a form, never in the URL: a filter can be a patient's ID."""
    return _audit(request, caller, app, view)


@router.get("/audit/integrity", response_class=HTMLResponse)
def integrity(request: Request, caller: CurrentCaller, app: AppDep, entry: int | None = None) -> HTMLResponse:
    proof = json.dumps(inclusion_proof(app.settings, entry), indent=2) if entry is not None else ""
    return render(request, "integrity.html", result=verification(app), entry=entry, proof=proof)


@router.get("/audit/break-glass", response_class=HTMLResponse)
def break_glass_queue(request: Request, caller: CurrentCaller, app: AppDep) -> HTMLResponse:
    return render(request, "break_glass.html", grants=break_glass.review_queue(app, include_reviewed=True))


@router.post("/audit/break-glass/{grant}/review")
def review_grant(
    grant: int, caller: CurrentCaller, app: AppDep, comment: Annotated[str, Form()] = ""
) -> Response:
    break_glass.review(app, caller.name, caller.address, grant, comment)
    return RedirectResponse("/audit/break-glass", status_code=303)
