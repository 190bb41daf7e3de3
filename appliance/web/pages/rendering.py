"""Templates, the page responses, and what a refused page shows (and records)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from appliance.db.tables import Role
from appliance.web.api.deps import CSRF_COOKIE, CSRF_FIELD, Caller, get_appliance
from audit.events import Action, AuditEvent, EventID, Outcome, ParticipantObject

HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")  # .html: values are escaped
HOME = {
    Role.CLINICIAN: "/worklist",
    Role.AUDITOR: "/audit",
    Role.RESEARCHER: "/datasets",
    Role.ADMIN: "/admin",
}
_API = ("/api/", "/dicomweb", "/metrics", "/health")


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    caller: Caller | None = getattr(request.state, "caller", None)
    values = {
        "caller": caller,
        "home": HOME.get(caller.role, "/") if caller else "/login",
        "csrf_field": CSRF_FIELD,
        "csrf": request.cookies.get(CSRF_COOKIE, ""),
        **context,
    }
    response = TEMPLATES.TemplateResponse(request, template, values, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"  # pages hold PHI: never kept by the browser
    return response


def wants_page(request: Request) -> bool:
    return not request.url.path.startswith(_API) and "text/html" in request.headers.get("accept", "")


def refused_page(request: Request, status: int, reason: str) -> Response:
    """Not signed in: to the sign-in page, then back. Not allowed: the denied page, audited."""
    if status == 401:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    refused: Caller | None = getattr(request.state, "refused", None) or getattr(request.state, "caller", None)
    study = request.path_params.get("study")
    objects = (
        (ParticipantObject("study", study),) if study else (ParticipantObject("page", request.url.path),)
    )
    who = refused.participant if refused else None
    get_appliance(request).audit.emit(
        AuditEvent(
            event_id=EventID.INSTANCES_ACCESSED if study else EventID.APPLICATION_ACTIVITY,
            action=Action.READ,
            outcome=Outcome.SERIOUS_FAILURE,
            type_code="Page",
            participants=(who,) if who else (),
            objects=objects,
            description=f"page refused: {reason}",
        )
    )
    return render(request, "denied.html", status_code=status, reason=reason)
