"""Sign in (password + one-time code), change the initial password, sign out, who am I."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from appliance.access import accounts, tokens
from appliance.web.api.deps import (
    AppDep,
    CurrentCaller,
    clear_session_cookies,
    client_address,
    set_session_cookies,
)

router = APIRouter(prefix="/api/auth", tags=["auth"])


class Login(BaseModel):
    username: str
    password: str
    otp: str


class PasswordChange(Login):
    new_password: str


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    csrf_token: str  # for requests that carry the session cookie and change something


class Me(BaseModel):
    username: str
    role: str
    sources: list[str]
    modalities: list[str]


@router.post("/login")
def login(body: Login, request: Request, response: Response, app: AppDep) -> Token:
    address = client_address(request)
    user = accounts.sign_in(app, body.username, body.password, body.otp, address)
    issued = tokens.issue(app, user, address)
    set_session_cookies(response, issued)
    return Token(access_token=issued.access_token, expires_in=issued.expires_in, csrf_token=issued.csrf_token)


@router.post("/password", status_code=204)
def change_password(body: PasswordChange, request: Request, app: AppDep) -> None:
    accounts.change_password(
        app, body.username, body.password, body.otp, body.new_password, client_address(request)
    )


@router.post("/logout", status_code=204)
def logout(request: Request, response: Response, caller: CurrentCaller, app: AppDep) -> None:
    tokens.revoke(app, request.state.token)
    accounts.audit_sign_in(
        app, caller.name, caller.role.value, caller.address, True, "signed out", logout=True
    )
    clear_session_cookies(response)


@router.get("/me")
def me(caller: CurrentCaller) -> Me:
    user = caller.user
    return Me(username=user.username, role=user.role.value, sources=user.sources, modalities=user.modalities)
