"""Accounts, for admins: the same functions, checks and audit as ``appliance users``."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from appliance.access import accounts
from appliance.access.accounts import Enrolment, UserView
from appliance.db.tables import Role
from appliance.web.api.deps import AppDep, CurrentCaller

router = APIRouter(prefix="/api/users", tags=["users"])


class NewUser(BaseModel):
    username: str
    role: Role
    sources: list[str] = []
    modalities: list[str] = []


class RoleChange(BaseModel):
    role: Role
    sources: list[str] = []
    modalities: list[str] = []


@router.get("")
def list_users(caller: CurrentCaller, app: AppDep) -> list[UserView]:
    return accounts.list_users(app)


@router.post("", status_code=201)
def add_user(body: NewUser, caller: CurrentCaller, app: AppDep) -> Enrolment:
    """The account; its initial password and TOTP enrolment, shown this once."""
    return accounts.add_user(app, caller.actor, body.username, body.role, body.sources, body.modalities)


@router.put("/{username}/role")
def set_role(username: str, body: RoleChange, caller: CurrentCaller, app: AppDep) -> UserView:
    return accounts.set_role(app, caller.actor, username, body.role, body.sources, body.modalities)


@router.post("/{username}/disable", status_code=204)
def disable(username: str, caller: CurrentCaller, app: AppDep) -> None:
    accounts.disable_user(app, caller.actor, username)


@router.post("/{username}/reset")
def reset(username: str, caller: CurrentCaller, app: AppDep) -> Enrolment:
    return accounts.reset_user(app, caller.actor, username)
