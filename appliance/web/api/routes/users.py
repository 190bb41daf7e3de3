"""Accounts, for admins: the same functions, checks and audit as ``appliance users``."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from appliance.access import accounts
from appliance.db.tables import Role
from appliance.web.api.deps import AppDep, CurrentCaller

router = APIRouter(prefix="/api/users", tags=["users"])


class User(BaseModel):
    """An account as shown: never its hash or secret."""

    username: str
    role: str
    disabled: bool
    must_change_password: bool
    locked_until: datetime | None
    sources: list[str]
    modalities: list[str]
    created_at: datetime


class NewUser(BaseModel):
    username: str
    role: Role
    sources: list[str] = []
    modalities: list[str] = []


class RoleChange(BaseModel):
    role: Role
    sources: list[str] = []
    modalities: list[str] = []


class Enrolment(BaseModel):
    """Shown once, to be handed to the person: the initial password and the TOTP enrolment URI."""

    username: str
    password: str
    totp_uri: str


def web_actor(caller: CurrentCaller) -> str:
    return f"web:{caller.name}"


@router.get("")
def list_users(caller: CurrentCaller, app: AppDep) -> list[User]:
    return [User(**vars(view)) for view in accounts.list_users(app)]


@router.post("", status_code=201)
def add_user(body: NewUser, caller: CurrentCaller, app: AppDep) -> Enrolment:
    enrolment = accounts.add_user(
        app, web_actor(caller), body.username, body.role, body.sources, body.modalities
    )
    return Enrolment(**vars(enrolment))


@router.put("/{username}/role")
def set_role(username: str, body: RoleChange, caller: CurrentCaller, app: AppDep) -> User:
    view = accounts.set_role(app, web_actor(caller), username, body.role, body.sources, body.modalities)
    return User(**vars(view))


@router.post("/{username}/disable", status_code=204)
def disable(username: str, caller: CurrentCaller, app: AppDep) -> None:
    accounts.disable_user(app, web_actor(caller), username)


@router.post("/{username}/reset")
def reset(username: str, caller: CurrentCaller, app: AppDep) -> Enrolment:
    return Enrolment(**vars(accounts.reset_user(app, web_actor(caller), username)))
