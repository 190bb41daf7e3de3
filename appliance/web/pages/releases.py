"""The researchers' page: the dataset releases, their counts and manifest digests, how to pull each."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from anonymizer.release.dsse import verify
from appliance.db.tables import ReleaseState
from appliance.research.releases import export_public_pem, export_signing_key, list_releases
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
    return render(request, "datasets.html", releases=rows, key=export_public_pem(app))
