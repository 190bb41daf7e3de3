"""Typed dependencies: the opened appliance, and the person calling, authorised in one place.

``authorize`` runs before every route (the application installs it once): it finds the route's
rule in :mod:`appliance.access.rules`, refuses a route without one, and for a non-public route
resolves the caller from a bearer token or the session cookie (a cookie-borne request that changes
anything must carry the CSRF token in ``X-CSRF-Token``). Routes then ask for ``CurrentCaller``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from appliance.access import rules, tokens
from appliance.context import Appliance
from appliance.db.tables import Role, UserAccount
from audit.events import Participant

SESSION_COOKIE = "appliance_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"  # the same token in a page's form
CSRF_COOKIE = "appliance_csrf"  # readable by the page (not HttpOnly): its forms post it back
BACKGROUND_HEADER = "X-Background-Refresh"  # a page's timer, not a person: the session does not slide
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@dataclass(frozen=True)
class Caller:
    """The signed-in person making this request, and from where."""

    user: UserAccount
    address: str

    @property
    def name(self) -> str:
        return self.user.username

    @property
    def role(self) -> Role:
        return self.user.role

    @property
    def participant(self) -> Participant:
        """This person as the requestor of an audit event: name, address, role."""
        return Participant(self.name, host=self.address, is_requestor=True, role=self.role.value)

    @property
    def actor(self) -> str:
        """How configuration changes made through the API name who made them."""
        return f"web:{self.user.username}"


def get_appliance(request: Request) -> Appliance:
    return request.app.state.appliance


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def _credentials(request: Request) -> tuple[str | None, bool]:
    """(the token, whether it came in the cookie)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else (None, False)


async def authorize(request: Request) -> None:
    """A page's form carries the CSRF token as the field ``csrf_token`` (a form cannot set a
    header); it is read here, and the rest runs in the thread pool as the routes' database work does."""
    form_token = None
    if request.method not in _SAFE_METHODS and CSRF_HEADER not in request.headers:
        if request.headers.get("content-type", "").startswith(_FORM_TYPES):
            form_token = (await request.form()).get(CSRF_FIELD)
    await run_in_threadpool(_authorize, request, form_token if isinstance(form_token, str) else None)


def _authorize(request: Request, form_token: str | None) -> None:
    route = request.scope.get("route")
    method = "GET" if request.method == "HEAD" else request.method
    allowed = rules.allowed(method, getattr(route, "path_format", ""))
    if allowed is None:
        raise HTTPException(403, "no access rule covers this route")
    if allowed is rules.PUBLIC:
        return
    token, from_cookie = _credentials(request)
    activity = from_cookie and BACKGROUND_HEADER not in request.headers  # a page's own polling is not
    bearer = tokens.resolve(get_appliance(request), token, slide=activity) if token else None
    if bearer is None:
        raise HTTPException(
            401, "sign in first: POST /api/auth/login", headers={"WWW-Authenticate": "Bearer"}
        )
    if (
        from_cookie
        and request.method not in _SAFE_METHODS
        and not bearer.csrf_matches(request.headers.get(CSRF_HEADER) or form_token)
    ):
        raise HTTPException(403, f"a request with the session cookie needs the {CSRF_HEADER} header")
    if bearer.user.role not in allowed:
        request.state.refused = Caller(bearer.user, client_address(request))  # for the denied page's audit
        raise HTTPException(403, f"the {bearer.user.role.value} role may not use this route")
    request.state.caller = Caller(bearer.user, client_address(request))
    request.state.token = token


def set_session_cookies(response: Response, issued: tokens.IssuedToken) -> None:
    """The session token (HttpOnly) and its CSRF token (readable, so that a page's forms send it),
    as browser-session cookies: the server decides when the session ends (see ``tokens``)."""
    for name, value, http_only in (
        (SESSION_COOKIE, issued.access_token, True),
        (CSRF_COOKIE, issued.csrf_token, False),
    ):
        response.set_cookie(
            name,
            value,
            httponly=http_only,
            secure=True,
            samesite="strict",
            path="/",
        )


def clear_session_cookies(response: Response) -> None:
    for name, http_only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=True, httponly=http_only, samesite="strict")


def current_caller(request: Request) -> Caller:
    return request.state.caller


AppDep = Annotated[Appliance, Depends(get_appliance)]
CurrentCaller = Annotated[Caller, Depends(current_caller)]
