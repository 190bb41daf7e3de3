"""The researchers' page: the dataset releases, their counts and manifest digests, how to pull each;
and the request for a new release (a cohort query with its purpose), which an admin approves on the
console before it runs."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from anonymizer.release.dsse import verify
from appliance.db.tables import ReleaseState, Role
from appliance.errors import ConfigError
from appliance.research import requests as release_requests
from appliance.research.releases import export_public_pem, export_signing_key, list_releases
from appliance.research.selection import RESULTS, ReleaseCriteria
from appliance.research.workspaces import list_workspaces
from appliance.web.api.deps import AppDep, CurrentCaller
from appliance.web.pages.rendering import render

router = APIRouter(include_in_schema=False)


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(request: Request, caller: CurrentCaller, app: AppDep) -> HTMLResponse:
    urls = {w.name: w.url for w in list_workspaces(app)}
    trusted = [export_signing_key(app).public_key()]
    rows = []
    for release in reversed(list_releases(app)):
        counts = {}
        if release.envelope is not None:
            counts = json.loads(verify(release.envelope, trusted))["predicate"]["counts"]
        where = urls.get(release.workspace, release.workspace)
        pullable = release.state == ReleaseState.COMPLETE and not where.startswith(("http://", "https://"))
        target = f"{release.name}-v{release.version}"
        command = f"research pull {where}/{release.name}/v{release.version} {target} --trust release-key.pem"
        rows.append({
            "name": release.name, "version": release.version, "state": release.state.value,
            "created": release.created_at, "counts": counts, "digest": release.manifest_digest or "",
            "pull": command if pullable else "",  # a research PACS's copy is read over its own DICOMweb
        })  # fmt: skip
    mine = None if caller.role == Role.ADMIN else caller.name
    return render(
        request, "datasets.html", releases=rows, key=export_public_pem(app), results=RESULTS,
        workspaces=list(urls), requests=release_requests.listed(app, mine),
        profiles=sorted({"research", "basic", *app.settings.deidentify.profiles}),
    )  # fmt: skip


class RequestForm(BaseModel):
    """A cohort query: what the researcher may ask for (no study is named: they see none)."""

    name: str
    workspace: str
    purpose: str
    modalities: str = ""
    since: str = ""
    until: str = ""
    with_results: str = "none"
    profile: str = "research"

    def criteria(self) -> ReleaseCriteria:
        def day(value: str) -> date | None:
            try:
                return date.fromisoformat(value) if value else None
            except ValueError:
                raise ConfigError(f"{value!r}: write the date as YYYY-MM-DD") from None

        modalities = tuple(m.strip().upper() for m in self.modalities.replace(",", " ").split() if m.strip())
        return ReleaseCriteria(
            modalities=modalities, since=day(self.since), until=day(self.until),
            profile=self.profile, with_results=self.with_results,
        )  # fmt: skip


@router.post("/datasets/requests")
def ask_for_release(caller: CurrentCaller, app: AppDep, form: Annotated[RequestForm, Form()]) -> Response:
    release_requests.ask(app, caller.participant, form.name, form.workspace, form.criteria(), form.purpose)
    return RedirectResponse("/datasets", status_code=303)
