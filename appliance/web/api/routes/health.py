"""Liveness and readiness, for the orchestrator (public: they show no PHI)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from appliance.context import Appliance
from dicom_gateway.limits import GatewayCapacity


def health_router(
    app: Appliance, gateway_running: Callable[[], bool], capacity: Callable[[], GatewayCapacity]
) -> APIRouter:
    router = APIRouter(prefix="/health", tags=["health"])

    @router.get("/live")
    def live() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/ready")
    def ready() -> JSONResponse:
        checks: dict[str, bool] = {}
        try:
            with app.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = True
        except Exception:
            checks["database"] = False
        checks["store"] = os.access(app.store.root, os.W_OK)
        checks["dicom"] = gateway_running()
        gateway = capacity()
        checks["dicom_capacity"] = gateway.has_room  # a new association would be taken now
        ok = all(checks.values())
        body = {
            "status": "ready" if ok else "not ready",
            "checks": checks,
            "dicom": asdict(gateway),
            "security_events": gateway.security_events,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    return router
