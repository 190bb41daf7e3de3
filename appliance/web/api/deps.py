"""Typed dependencies: the opened appliance, and the person calling, authorised in one place.

``authorize`` runs before every route (the application installs it once): it finds the route's
rule in :mod:`appliance.access.rules`, refuses a route without one, and for a non-public route
resolves the caller from a bearer token or the session cookie (a cookie-borne request that changes
anything must carry the CSRF token in ``X-CSRF-Token``). Routes then ask for ``CurrentCaller``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from appliance.access import rules, tokens
from appliance.context import Appliance
from appliance.db.tables import Role, UserAccount

SESSION_COOKIE = "appliance_session"
CSRF_HEADER = "X-CSRF-Token"
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


def authorize(request: Request) -> None:
    route = request.scope.get("route")
    method = "GET" if request.method == "HEAD" else request.method
    allowed = rules.allowed(method, getattr(route, "path_format", ""))
    if allowed is None:
        raise HTTPException(403, "no access rule covers this route")
    if allowed is rules.PUBLIC:
        return
    token, from_cookie = _credentials(request)
    bearer = tokens.resolve(get_appliance(request), token) if token else None
    if bearer is None:
        raise HTTPException(
            401, "sign in first: POST /api/auth/login", headers={"WWW-Authenticate": "Bearer"}
        )
    if (
        from_cookie
        and request.method not in _SAFE_METHODS
        and not bearer.csrf_matches(request.headers.get(CSRF_HEADER))
    ):
        raise HTTPException(403, f"a request with the session cookie needs the {CSRF_HEADER} header")
    if bearer.user.role not in allowed:
        raise HTTPException(403, f"the {bearer.user.role.value} role may not use this route")
    request.state.caller = Caller(bearer.user, client_address(request))
    request.state.token = token


def current_caller(request: Request) -> Caller:
    return request.state.caller


AppDep = Annotated[Appliance, Depends(get_appliance)]
CurrentCaller = Annotated[Caller, Depends(current_caller)]
