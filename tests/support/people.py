"""People for the HTTP tests: accounts made as ``appliance users add`` makes them, signed in over HTTP.

Each one-time code is accepted once, and only for the steps around now (one either side).
``Person`` uses the earliest step not used yet by a successful sign-in: the previous one while
more than ``_MARGIN`` seconds of the current step remain (a request crossing the boundary would
arrive two steps late, refused), else the current one, then the next; beyond that it waits for the
next step. A refused attempt (401, 429) uses no step, so a test of failures never waits.
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
_MARGIN = 5.0  # seconds


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

    def _next_step(self) -> int:
        now = time.time()
        current = int(now // 30)
        earliest = current - 1 if 30 - now % 30 > _MARGIN else current
        step = max(self.step + 1, earliest)
        if step > current + 1:  # both steps ahead used: wait until this one is the next
            time.sleep((step - 1) * 30 - now + 0.1)
        return step

    def code(self) -> str:
        """The code of the next unused step, counted as used (for a request a test makes itself)."""
        self.step = self._next_step()
        return pyotp.TOTP(self.secret).generate_otp(self.step)

    def _post(self, path: str, body: dict) -> httpx.Response:
        step = self._next_step()
        body = {**body, "username": self.username, "otp": pyotp.TOTP(self.secret).generate_otp(step)}
        response = httpx.post(f"{self.base}{path}", json=body)
        if response.status_code not in (401, 429):  # the code was checked and accepted: its step is used
            self.step = step
        return response

    def change_password(self) -> httpx.Response:
        body = {"password": self.password, "new_password": NEW_PASSWORD}
        response = self._post("/api/auth/password", body)
        if response.status_code == 204:
            self.password = NEW_PASSWORD
        return response

    def login(self, password: str | None = None) -> httpx.Response:
        return self._post("/api/auth/login", {"password": password or self.password})

    def token(self) -> str:
        """Signed in (the initial password changed first): the bearer token."""
        if self.password != NEW_PASSWORD:
            assert self.change_password().status_code == 204
        response = self.login()
        assert response.status_code == 200, response.text
        return response.json()["access_token"]
