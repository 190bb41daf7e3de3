"""The API's OpenAPI description, for signed-in admins only (it maps every route)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from appliance.web.api.deps import CurrentCaller

router = APIRouter(tags=["openapi"])


@router.get("/api/openapi.json", include_in_schema=False)
def openapi(request: Request, caller: CurrentCaller) -> JSONResponse:
    return JSONResponse(request.app.openapi())
