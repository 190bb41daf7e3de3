"""People for the HTTP tests: accounts made as ``appliance users add`` makes them, signed in over HTTP.

Each one-time code is accepted once, and only for the steps around now; ``Person`` therefore uses
the codes of successive steps (current, then next) and never the same step twice. It never uses the
previous step: a request that crosses a step boundary on a slow machine would then arrive two steps
late and be refused. A third sign-in within one step waits for the next step to begin.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

import httpx
import pyotp

from appliance.access import accounts
from appliance.context import Appliance
from appliance.db.tables import Role

NEW_PASSWORD = "a long enough new password"


@dataclass
class Person:
    base: str
    username: str
    password: str
    secret: str
    step: int = field(default_factory=lambda: int(time.time() // 30) - 2)  # the last step used

    @classmethod
    def add(
        cls,
        app: Appliance,
        base: str,
        username: str,
        role: Role,
        sources: list[str] | None = None,
        modalities: list[str] | None = None,
    ) -> Person:
        enrolment = accounts.add_user(app, "test", username, role, sources, modalities)
        secret = parse_qs(urlparse(enrolment.totp_uri).query)["secret"][0]
        return cls(base, username, enrolment.password, secret)

    def code(self) -> str:
        """The code of the next unused step: the current one, or the next when the current is used."""
        current = int(time.time() // 30)
        self.step = max(self.step + 1, current)
        if self.step > current + 1:
            time.sleep((self.step - 1) * 30 - time.time() + 0.1)
        return pyotp.TOTP(self.secret).generate_otp(self.step)

    def change_password(self) -> httpx.Response:
        body = {"username": self.username, "password": self.password, "otp": self.code()}
        response = httpx.post(f"{self.base}/api/auth/password", json={**body, "new_password": NEW_PASSWORD})
        if response.status_code == 204:
            self.password = NEW_PASSWORD
        return response

    def login(self, password: str | None = None) -> httpx.Response:
        body = {"username": self.username, "password": password or self.password, "otp": self.code()}
        return httpx.post(f"{self.base}/api/auth/login", json=body)

    def token(self) -> str:
        """Signed in (the initial password changed first): the bearer token."""
        if self.password != NEW_PASSWORD:
            assert self.change_password().status_code == 204
        response = self.login()
        assert response.status_code == 200, response.text
        return response.json()["access_token"]
