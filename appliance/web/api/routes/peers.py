"""Sources and destinations, for admins: the same functions, checks and audit as the CLI."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from appliance.admin import peers
from appliance.db.tables import Destination, Source
from appliance.errors import AccessRefused
from appliance.pipeline.sending import echo_destination
from appliance.web.api.deps import AppDep, CurrentCaller
from dicom_gateway.errors import GatewayError

router = APIRouter(prefix="/api", tags=["sources and destinations"])


class SourceBody(BaseModel):
    name: str
    ae_title: str
    host: str
    tls_subject: str | None = None


class DestinationBody(BaseModel):
    name: str
    ae_title: str
    host: str
    port: int
    tls: bool = False
    results: bool = False


class Echo(BaseModel):
    name: str
    success: bool


@router.get("/sources")
def list_sources(caller: CurrentCaller, app: AppDep) -> list[SourceBody]:
    return [SourceBody(**s.model_dump(exclude={"id", "created_at"})) for s in peers.list_peers(app, Source)]


@router.post("/sources", status_code=201)
def add_source(body: SourceBody, caller: CurrentCaller, app: AppDep) -> SourceBody:
    peers.add_source(app, caller.actor, body.name, body.ae_title, body.host, body.tls_subject)
    return body


@router.delete("/sources/{name}", status_code=204)
def remove_source(name: str, caller: CurrentCaller, app: AppDep) -> None:
    peers.remove_peer(app, caller.actor, Source, name)


@router.get("/destinations")
def list_destinations(caller: CurrentCaller, app: AppDep) -> list[DestinationBody]:
    return [
        DestinationBody(**d.model_dump(exclude={"id", "created_at"}))
        for d in peers.list_peers(app, Destination)
    ]


@router.post("/destinations", status_code=201)
def add_destination(body: DestinationBody, caller: CurrentCaller, app: AppDep) -> DestinationBody:
    peers.add_destination(
        app, caller.actor, body.name, body.ae_title, body.host, body.port, body.tls, body.results
    )
    return body


@router.delete("/destinations/{name}", status_code=204)
def remove_destination(name: str, caller: CurrentCaller, app: AppDep) -> None:
    peers.remove_peer(app, caller.actor, Destination, name)


@router.post("/destinations/{name}/echo")
def echo(name: str, caller: CurrentCaller, app: AppDep) -> Echo:
    try:
        echo_destination(app, name)
    except GatewayError as exc:
        raise AccessRefused(f"C-ECHO to {name} failed: {exc}", 502) from exc
    return Echo(name=name, success=True)
