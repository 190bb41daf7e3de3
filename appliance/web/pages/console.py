"""The admins' console: sources, destinations (with an echo), models (validation, promote, roll back),
users, keys, jobs (retry),
researchers' release requests (approve, refuse), health. Each action calls what the CLI calls, so
its checks and audit are the same."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import select

from appliance.access import accounts
from appliance.admin import model_registry, peers
from appliance.db.tables import Destination, Job, RequestState, Source
from appliance.modelops import promotion, reports
from appliance.pipeline import sending
from appliance.research import requests as release_requests
from appliance.security import rotation
from appliance.web.api.deps import AppDep, CurrentCaller
from appliance.web.pages.rendering import render
from dicom_gateway.errors import GatewayError

router = APIRouter(include_in_schema=False)


@router.get("/admin", response_class=HTMLResponse)
def console(
    request: Request, caller: CurrentCaller, app: AppDep, echoed: str = "", failed: str = ""
) -> HTMLResponse:
    in_use = rotation.keys_in_use(app)
    with app.session() as session:
        jobs = list(session.exec(select(Job).order_by(Job.id.desc()).limit(50)))  # type: ignore[attr-defined]
    return render(
        request, "admin.html",
        sources=peers.list_peers(app, Source), destinations=peers.list_peers(app, Destination),
        models=[(m, reports.summary(app, m.name, m.version)) for m in model_registry.list_models(app)],
        users=accounts.list_users(app),
        keys=[(kid, kid == app.keyring.active_id, in_use.get(kid, 0)) for kid in app.keyring.ids],
        jobs=jobs, echoed=echoed, failed=failed,
        requests=[r for r in release_requests.listed(app) if r.state == RequestState.PENDING],
    )  # fmt: skip


@router.post("/admin/destinations/{name}/echo")
def echo(name: str, caller: CurrentCaller, app: AppDep) -> Response:
    try:
        sending.echo_destination(app, name)
    except GatewayError as exc:
        return RedirectResponse("/admin?" + urlencode({"failed": f"{name}: {exc}"}), status_code=303)
    return RedirectResponse("/admin?" + urlencode({"echoed": name}), status_code=303)


@router.post("/admin/jobs/{job}/retry")
def retry(job: int, caller: CurrentCaller, app: AppDep) -> Response:
    sending.retry(app, job)
    return RedirectResponse("/admin", status_code=303)


@router.post("/admin/models/{name}/{version}/promote")
def promote(
    name: str, version: str, caller: CurrentCaller, app: AppDep, override_reason: Annotated[str, Form()] = ""
) -> Response:
    """As ``appliance models promote``: refused (with its reason) unless the newest validation passed."""
    promotion.promote(app, caller.actor, name, version, override_reason.strip() or None)
    return RedirectResponse("/admin", status_code=303)


@router.post("/admin/models/{name}/rollback")
def rollback(name: str, caller: CurrentCaller, app: AppDep) -> Response:
    promotion.rollback(app, caller.actor, name)
    return RedirectResponse("/admin", status_code=303)


@router.post("/admin/release-requests/{request_id}/approve")
def approve(request_id: int, caller: CurrentCaller, app: AppDep) -> Response:
    """Approved, the release runs in a process of its own; the datasets page shows how it ended."""
    release_requests.decide(app, caller.participant, request_id, approve=True)
    release_requests.start(app, request_id)
    return RedirectResponse("/admin", status_code=303)


@router.post("/admin/release-requests/{request_id}/refuse")
def refuse(
    request_id: int, caller: CurrentCaller, app: AppDep, note: Annotated[str, Form()] = ""
) -> Response:
    release_requests.decide(app, caller.participant, request_id, approve=False, note=note)
    return RedirectResponse("/admin", status_code=303)
