"""OHIF v3, the viewer clinicians know, served under ``/viewer`` from its prebuilt files.

``scripts/fetch-viewer.sh`` (run by ``make install``) puts the pinned ``@ohif/app`` build in
``share/ohif-viewer`` of the install (or ``http.viewer_directory``); its files hold no PHI and are
served to anyone. Its configuration is this appliance's: one data source, the appliance's own
DICOMweb, reached with the signed-in person's session (same origin, so the cookie goes along and
every query and read is scoped and audited as DICOMweb's are); no public data source, no local
files, no data source given in a URL, and no study list (the worklist is the way in).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from appliance.errors import NotFound
from appliance.web.api.deps import AppDep

router = APIRouter(include_in_schema=False)
_DICOMWEB = "/dicomweb"
_ASSETS = (".js", ".wasm", ".woff2", ".woff", ".css")
CONFIG = {
    "routerBasename": "/viewer",
    "showStudyList": False,
    "extensions": [],
    "modes": [],
    "investigationalUseDialog": {"option": "never"},
    "disableConfirmationPrompts": True,
    "showWarningMessageForCrossOrigin": False,
    "dataSources": [
        {
            "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
            "sourceName": "appliance",
            "configuration": {
                "friendlyName": "Imaging appliance",
                "name": "appliance",
                "wadoUriRoot": _DICOMWEB,
                "qidoRoot": _DICOMWEB,
                "wadoRoot": _DICOMWEB,
                "qidoSupportsIncludeField": False,
                "supportsReject": False,
                "imageRendering": "wadors",
                "thumbnailRendering": "wadors",
                "enableStudyLazyLoad": True,
                "supportsFuzzyMatching": False,
                "supportsWildcard": True,
                "staticWps": False,
                "singlepart": "bulkdata,video,pdf",
                "omitQuotationForMultipartRequest": True,
                "bulkDataURI": {"enabled": True},
            },
        }
    ],
    "defaultDataSourceName": "appliance",
}


def viewer_directory(configured: Path | None) -> Path:
    return configured or Path(sys.prefix) / "share" / "ohif-viewer"


@router.get("/viewer/app-config.js")
def app_config() -> Response:
    return Response(f"window.config = {json.dumps(CONFIG, indent=1)};\n", media_type="text/javascript")


def _root(app: AppDep) -> Path:
    root = viewer_directory(app.settings.http.viewer_directory).resolve()
    if not (root / "index.html").is_file():
        raise NotFound("the viewer is not installed here: run scripts/fetch-viewer.sh (make install does)")
    return root


def _file(root: Path, path: str) -> Path | None:
    wanted = (root / path).resolve()
    return wanted if wanted.is_file() and wanted.is_relative_to(root) else None


@router.get("/viewer/{path:path}")
def viewer_file(path: str, app: AppDep) -> Response:
    """A file of the build, else its page (the viewer's own routes, such as /viewer/viewer)."""
    root = _root(app)
    found = _file(root, path)
    if found is not None:
        return FileResponse(found, headers={"Cache-Control": "public, max-age=86400"})
    return FileResponse(root / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/{asset}")
def viewer_asset(asset: str, app: AppDep) -> Response:
    """A build file the viewer asks for at the site's root (its image decoders' workers and fonts
    are loaded from there, whatever the public path); anything else is not found."""
    found = _file(_root(app), asset) if asset.endswith(_ASSETS) else None
    if found is None:
        raise NotFound(f"no page or file /{asset}")
    return FileResponse(found, headers={"Cache-Control": "public, max-age=86400"})
