"""The HTTP application: health, sign-in, DICOMweb, break-glass, the admin API and metrics.

Every route passes ``authorize`` (deny by default, rules in :mod:`appliance.access.rules`);
``state.routes`` lists them all (method, path template) for the test that holds each to its rule. Refusals
are JSON ``{"detail": reason}`` with their status; an unexpected error is a 500 that says only
that, never a traceback (the log has the exception's type and frames, without values).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from appliance.context import Appliance
from appliance.errors import AccessRefused, ApplianceError, NotFound
from appliance.web.api.deps import authorize
from appliance.web.api.routes import (
    audit,
    auth,
    break_glass,
    dicomweb,
    health,
    metrics,
    openapi,
    operations,
    peers,
    users,
)
from appliance.web.clinical_records import ClinicalRecords
from appliance.web.pages import auditing, compliance, console, releases, review, session, viewer, worklist
from appliance.web.pages.rendering import HERE, refused_page, render, wants_page
from dicom_gateway.errors import DicomwebRefused
from dicom_gateway.limits import GatewayCapacity

log = logging.getLogger(__name__)


def create_app(
    app: Appliance, gateway_running: Callable[[], bool], capacity: Callable[[], GatewayCapacity]
) -> FastAPI:
    records = ClinicalRecords(app)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        records.close()

    api = FastAPI(
        lifespan=lifespan,
        title="Imaging appliance",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served to signed-in admins only, below
        dependencies=[Depends(authorize)],
    )
    api.state.appliance = app
    routers = [
        health.health_router(app, gateway_running, capacity),
        auth.router,
        dicomweb.router(records),
        break_glass.router,
        audit.router,
        users.router,
        peers.router,
        operations.router,
        metrics.router(app, capacity),
        openapi.router,
        session.router,
        worklist.router(records),
        review.router(records),
        auditing.router,
        compliance.router,
        releases.router,
        console.router,
        viewer.router,
    ]
    for router in routers:
        api.include_router(router)
    api.mount("/static", StaticFiles(directory=HERE / "static"), name="static")  # CSS and JS: no PHI
    api.state.routes = [
        (method, route.path_format)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in sorted(route.methods)
    ]

    @api.exception_handler(AccessRefused)
    def refused(request: Request, exc: AccessRefused) -> Response:
        if wants_page(request):
            return refused_page(request, exc.status, str(exc))
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)

    @api.exception_handler(HTTPException)
    def http_refused(request: Request, exc: HTTPException) -> Response:
        if exc.status_code in (401, 403) and wants_page(request):
            return refused_page(request, exc.status_code, str(exc.detail))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @api.exception_handler(DicomwebRefused)
    def dicomweb_refused(request: Request, exc: DicomwebRefused) -> JSONResponse:
        return JSONResponse({"detail": exc.reason}, status_code=exc.status)

    @api.exception_handler(NotFound)
    def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @api.exception_handler(ApplianceError)
    def bad_request(request: Request, exc: ApplianceError) -> Response:
        if wants_page(request):
            return render(request, "denied.html", status_code=400, reason=str(exc), title="Not done")
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @api.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed: %s", type(exc).__name__, exc_info=exc)
        return JSONResponse({"detail": "internal error; the appliance log has its kind"}, status_code=500)

    return api
