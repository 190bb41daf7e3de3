"""Jobs, models and keys, for admins: what runs, what is deployed, which keys exist (metadata only)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel
from sqlmodel import select

from appliance.admin import model_registry
from appliance.db.tables import Job, Model
from appliance.modelops import promotion
from appliance.pipeline import sending
from appliance.security import rotation
from appliance.web.api.deps import AppDep, CurrentCaller

router = APIRouter(prefix="/api", tags=["operations"])


class JobView(BaseModel):
    id: int
    kind: str
    state: str
    attempts: int
    outcome: str | None
    last_error: str | None
    updated_at: datetime

    @classmethod
    def of(cls, job: Job) -> JobView:
        return cls(
            id=job.id or 0,
            kind=job.kind.value,
            state=job.state.value,
            attempts=job.attempts,
            outcome=job.outcome,
            last_error=job.last_error,
            updated_at=job.updated_at,
        )


class ModelView(BaseModel):
    name: str
    version: str
    publisher: str
    state: str
    imported_at: datetime

    @classmethod
    def of(cls, model: Model) -> ModelView:
        return cls(
            name=model.name,
            version=model.version,
            publisher=model.publisher,
            state=model.state.value,
            imported_at=model.imported_at,
        )


class KeyView(BaseModel):
    kek: str
    active: bool
    wraps: int


@router.get("/jobs")
def list_jobs(caller: CurrentCaller, app: AppDep) -> list[JobView]:
    """Every job of every kind (inference and sending), oldest first."""
    with app.session() as session:
        return [JobView.of(job) for job in session.exec(select(Job).order_by(Job.id))]  # type: ignore[arg-type]


@router.post("/jobs/{job}/retry")
def retry_job(job: int, caller: CurrentCaller, app: AppDep) -> JobView:
    """A failed send job pending again, with a fresh set of attempts."""
    return JobView.of(sending.retry(app, job))


@router.get("/models")
def list_models(caller: CurrentCaller, app: AppDep) -> list[ModelView]:
    return [ModelView.of(m) for m in model_registry.list_models(app)]


class PromotionRequest(BaseModel):
    override_reason: str | None = None


@router.post("/models/{name}/{version}/promote")
def promote_model(
    name: str, version: str, caller: CurrentCaller, app: AppDep, request: PromotionRequest | None = None
) -> ModelView:
    """This version serves from the next series on, when its validation passed (or an admin overrides)."""
    reason = request.override_reason if request else None
    return ModelView.of(promotion.promote(app, caller.actor, name, version, reason))


@router.post("/models/{name}/rollback")
def rollback_model(name: str, caller: CurrentCaller, app: AppDep) -> ModelView:
    """The version active before the current one serves again."""
    return ModelView.of(promotion.rollback(app, caller.actor, name))


@router.post("/models/{name}/{version}/retire")
def retire_model(name: str, version: str, caller: CurrentCaller, app: AppDep) -> ModelView:
    return ModelView.of(model_registry.retire(app, caller.actor, name, version))


@router.get("/keys")
def list_keys(caller: CurrentCaller, app: AppDep) -> list[KeyView]:
    in_use = rotation.keys_in_use(app)
    return [
        KeyView(kek=kid, active=kid == app.keyring.active_id, wraps=in_use.get(kid, 0))
        for kid in app.keyring.ids
    ]
