"""The auditors' pages: the audit log with every filter of ``audit list``, sortable by every column
and exported as CSV; integrity (verification, and the inclusion proof of a chosen entry); the
break-glass review queue. Every read of the log is itself an Audit Log Used event."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from appliance.access import break_glass
from appliance.admin.audit_reading import COLUMNS, inclusion_proof, search, verification
from appliance.web.api.deps import AppDep, CurrentCaller
from appliance.web.pages.rendering import render
from audit.events import Participant
from audit.reader import Filter

router = APIRouter(include_in_schema=False)
_FILTERS = ("since", "until", "who", "patient_id", "study_uid", "event_id", "outcome")


def _moment(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    caller: CurrentCaller,
    app: AppDep,
    since: str = "",
    until: str = "",
    who: str = "",
    patient_id: str = "",
    study_uid: str = "",
    event_id: str = "",
    outcome: str = "",
    sort: str = "index",
    order: str = "desc",
) -> HTMLResponse:
    wanted = Filter(
        _moment(since), _moment(until), who or None, patient_id or None, study_uid or None, event_id or None,
        int(outcome) if outcome else None,
    )  # fmt: skip
    reader = Participant(caller.name, host=caller.address, is_requestor=True, role=caller.role.value)
    key = sort if sort in COLUMNS else "index"
    rows = search(app, reader, wanted, key, order, "audit page")[:500]
    given = {
        name: value
        for name, value in zip(
            _FILTERS, (since, until, who, patient_id, study_uid, event_id, outcome), strict=True
        )
    }

    def sort_link(column: str) -> str:
        flipped = "desc" if (column == key and order == "asc") else "asc"
        return "/audit?" + urlencode({**given, "sort": column, "order": flipped})

    csv_link = "/api/audit/events?" + urlencode(
        {k: v for k, v in given.items() if v} | {"sort": key, "order": order, "format": "csv"}
    )
    return render(
        request, "audit.html", rows=rows, columns=COLUMNS, filters=given, sort=key, order=order,
        sort_link=sort_link, csv_link=csv_link,
    )  # fmt: skip


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
