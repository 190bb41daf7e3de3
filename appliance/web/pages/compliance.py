"""The compliance page (auditors and admins): the newest report's findings with their evidence, the
reports kept, each signed report to download, and a button that runs the checks now."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from appliance.compliance import reports
from appliance.web.api.deps import AppDep, CurrentCaller
from appliance.web.pages.rendering import render

router = APIRouter(include_in_schema=False)


@router.get("/compliance", response_class=HTMLResponse)
def compliance_page(request: Request, caller: CurrentCaller, app: AppDep) -> HTMLResponse:
    newest = reports.latest(app)
    report = reports.opened(app, newest) if newest else None
    return render(request, "compliance.html", row=newest, report=report, history=reports.history(app))


@router.post("/compliance")
async def run_now(caller: CurrentCaller, app: AppDep) -> Response:
    await run_in_threadpool(reports.run, app, f"web:{caller.name}")
    return RedirectResponse("/compliance", status_code=303)


@router.get("/compliance/{report_id}/signed")
def signed(report_id: int, caller: CurrentCaller, app: AppDep) -> Response:
    """The DSSE envelope: verified with the audit signing key (``audit-signing-key.pub``)."""
    row = reports.one(app, report_id)
    disposition = f'attachment; filename="compliance-report-{row.id}.dsse.json"'
    return Response(row.envelope, media_type="application/json", headers={"Content-Disposition": disposition})
