"""The HTTP application: health, sign-in, DICOMweb, break-glass, the admin API and metrics.

Every route passes ``authorize`` (deny by default, rules in :mod:`appliance.access.rules`). Refusals
are JSON ``{"detail": reason}`` with their status; an unexpected error is a 500 that says only
that, never a traceback (the log has the exception's type and frames, without values).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from appliance.context import Appliance
from appliance.errors import AccessRefused, ApplianceError, NotFound
from appliance.web.api.deps import authorize
from appliance.web.api.routes import auth, break_glass, dicomweb, health, metrics, operations, peers, users
from dicom_gateway.errors import DicomwebRefused
from dicom_gateway.limits import GatewayCapacity

log = logging.getLogger(__name__)


def create_app(
    app: Appliance, gateway_running: Callable[[], bool], capacity: Callable[[], GatewayCapacity]
) -> FastAPI:
    api = FastAPI(
        title="Imaging appliance",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served to signed-in admins only, below
        dependencies=[Depends(authorize)],
    )
    api.state.appliance = app
    api.include_router(health.health_router(app, gateway_running, capacity))
    api.include_router(auth.router)
    api.include_router(dicomweb.router(app))
    api.include_router(break_glass.router)
    api.include_router(users.router)
    api.include_router(peers.router)
    api.include_router(operations.router)
    api.include_router(metrics.router(app, capacity))

    @api.get("/api/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(api.openapi())

    @api.exception_handler(AccessRefused)
    def refused(request: Request, exc: AccessRefused) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)

    @api.exception_handler(DicomwebRefused)
    def dicomweb_refused(request: Request, exc: DicomwebRefused) -> JSONResponse:
        return JSONResponse({"detail": exc.reason}, status_code=exc.status)

    @api.exception_handler(NotFound)
    def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @api.exception_handler(ApplianceError)
    def bad_request(request: Request, exc: ApplianceError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @api.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed: %s", type(exc).__name__, exc_info=exc)
        return JSONResponse({"detail": "internal error; the appliance log has its kind"}, status_code=500)

    return api
