"""Break-glass: open a study outside one's scope with a reason; the auditors' review queue."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from appliance.access import break_glass
from appliance.access.break_glass import GrantView
from appliance.web.api.deps import AppDep, CurrentCaller

router = APIRouter(prefix="/api/break-glass", tags=["break-glass"])


class GrantRequest(BaseModel):
    study_uid: str
    reason_code: str
    reason_text: str


class Granted(BaseModel):
    id: int
    study_uid: str
    expires_at: datetime


class Review(BaseModel):
    comment: str


@router.post("", status_code=201)
def open_study(body: GrantRequest, caller: CurrentCaller, app: AppDep) -> Granted:
    row = break_glass.grant(
        app, caller.user, caller.address, body.study_uid, body.reason_code, body.reason_text
    )
    return Granted(id=row.id or 0, study_uid=row.study_uid, expires_at=row.expires_at)


@router.get("")
def queue(caller: CurrentCaller, app: AppDep, include_reviewed: bool = False) -> list[GrantView]:
    return break_glass.review_queue(app, include_reviewed)


@router.post("/{grant}/review")
def review(grant: int, body: Review, caller: CurrentCaller, app: AppDep) -> GrantView:
    return break_glass.review(app, caller.name, caller.address, grant, body.comment)
