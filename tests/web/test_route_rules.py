"""Every route refuses a caller without credentials (401) and every role its rule does not allow
(403), over real HTTP; a route the application declares without a rule fails here."""

from __future__ import annotations

import re

import httpx
import pytest

from appliance.access import rules
from appliance.context import open_appliance
from appliance.db.tables import Role
from appliance.web.app import create_app
from dicom_gateway.limits import GatewayCapacity

pytestmark = pytest.mark.slow


def _routes(site) -> list[tuple[str, str]]:
    app = open_appliance(site.home)
    try:
        api = create_app(app, lambda: True, lambda: GatewayCapacity(0, 1, 0, 1, 0, 0))
    finally:
        app.close()
    return api.state.routes


def test_every_route_has_a_rule(site):
    missing = [route for route in _routes(site) if rules.allowed(*route) is None]
    assert not missing, f"routes without an access rule: {missing}"
    assert ("GET", "/dicomweb/studies") in _routes(site)  # the table is the application's own


def _request(site, method: str, path: str, token: str | None) -> httpx.Response:
    concrete = re.sub(r"\{[^}]+\}", "1.2.3", path)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {} if method in ("POST", "PUT") else None
    return httpx.request(method, site.base + concrete, headers=headers, json=body, timeout=30)


def test_no_credentials_and_wrong_roles_are_refused(site):
    tokens = {role: site.person(f"rules-{role.value}", role).token() for role in Role}
    for method, path in _routes(site):
        allowed = rules.allowed(method, path)
        if allowed is rules.PUBLIC:
            continue
        response = _request(site, method, path, None)
        assert response.status_code == 401, (method, path, response.text)
        for role in set(Role) - allowed:
            response = _request(site, method, path, tokens[role])
            assert response.status_code == 403, (method, path, role, response.text)
            assert "role may not" in response.json()["detail"]
        if (method, path) in {("POST", "/api/auth/logout"), ("POST", "/logout")}:
            continue  # allowed to every role, and it would end the tokens the loop goes on with
        for role in allowed:  # past the rule: whatever the route then says, it is not a refusal by role
            response = _request(site, method, path, tokens[role])
            assert response.status_code != 401, (method, path, role)
            assert response.status_code < 500, (
                method,
                path,
                role,
                response.text,
            )  # an empty body, a made-up UID
            assert "role may not" not in response.text, (method, path, role)
