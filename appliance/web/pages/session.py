"""Sign-in, first sign-in (one-time code enrolment by QR code, then one's own password), sign-out."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs, urlparse

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from appliance.access import accounts, tokens
from appliance.db.tables import UserAccount
from appliance.errors import AccessRefused
from appliance.web.api.deps import (
    AppDep,
    CurrentCaller,
    clear_session_cookies,
    client_address,
    set_session_cookies,
)
from appliance.web.pages.rendering import HOME, render

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form()]
_CHANGE_REQUIRED = "password change required"


def _safe_next(target: str) -> str:
    """Only a path of this site (never another host) may follow a sign-in."""
    return target if target.startswith("/") and not target.startswith("//") else ""


def _signed_in(request: Request, app: AppDep, user: UserAccount, target: str) -> Response:
    issued = tokens.issue(app, user, client_address(request))
    response = RedirectResponse(_safe_next(target) or HOME.get(user.role, "/"), status_code=303)
    set_session_cookies(response, issued)
    return response


@router.get("/")
def start(request: Request) -> Response:
    return RedirectResponse("/login", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str = "") -> Response:
    return render(request, "login.html", next=_safe_next(next))


def _enrol_page(
    request: Request, username: str, password: str, target: str, uri: str | None, error: str = ""
) -> Response:
    qr = secret = None
    if uri:
        qr = segno.make(uri, error="m").svg_inline(scale=4, title="one-time code enrolment")
        secret = parse_qs(urlparse(uri).query)["secret"][0]
    return render(
        request, "enrol.html", status_code=400 if error else 200, username=username, password=password,
        next=target, qr=qr, secret=secret, error=error,
    )  # fmt: skip


@router.post("/login")
def login(
    request: Request,
    app: AppDep,
    username: Text,
    password: Text,
    otp: Annotated[str, Form()] = "",
    next: Text = "",
) -> Response:
    address = client_address(request)
    try:
        if not otp.strip():
            uri = accounts.first_sign_in_enrolment(app, username, password, address)
            if uri is None:
                raise AccessRefused("enter the one-time code from your authenticator app", 401)
            return _enrol_page(request, username, password, next, uri)
        user = accounts.sign_in(app, username, password, otp.strip(), address)
    except AccessRefused as refused:
        if _CHANGE_REQUIRED in str(refused):  # enrolled already: only the password is left to choose
            return _enrol_page(request, username, password, next, None)
        return render(
            request,
            "login.html",
            status_code=refused.status,
            error=str(refused),
            username=username,
            next=next,
        )
    return _signed_in(request, app, user, next)


@router.post("/enrol")
def enrol(
    request: Request,
    app: AppDep,
    username: Text,
    password: Text,
    otp: Text,
    new_password: Text,
    next: Text = "",
) -> Response:
    """The code proves the enrolment; the new password replaces the initial one; signed in."""
    try:
        user = accounts.change_password(
            app, username, password, otp.strip(), new_password, client_address(request)
        )
    except AccessRefused as refused:  # a wrong code (the QR again, if never enrolled), a weak password
        uri = accounts.first_sign_in_enrolment(app, username, password, client_address(request))
        return _enrol_page(request, username, password, next, uri, str(refused))
    return _signed_in(request, app, user, next)


@router.post("/logout")
def logout(request: Request, caller: CurrentCaller, app: AppDep) -> Response:
    tokens.revoke(app, request.state.token)
    accounts.audit_sign_in(
        app, caller.name, caller.role.value, caller.address, True, "signed out", logout=True
    )
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookies(response)
    return response
