"""An account made with ``appliance users add`` and past its first sign-in, for benchmarks."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pyotp

from testbed.processes import run_cli

PASSWORD = "benchmark password"


@dataclass(frozen=True)
class Enrolled:
    username: str
    totp: pyotp.TOTP
    step: int  # the step whose code changed the password

    def login_body(self) -> dict:
        """The sign-in request, with the code of the step after the one that changed the password.

        That step is accepted from the step before it on (one step of drift), so it holds for the
        next minute; the previous step would be refused if the request crossed a step boundary.
        """
        return {"username": self.username, "password": PASSWORD, "otp": self.totp.generate_otp(self.step + 1)}

    def token(self, base: str) -> str:
        response = httpx.post(f"{base}/api/auth/login", json=self.login_body())
        response.raise_for_status()
        return response.json()["access_token"]


def enrol(home: Path, base: str, username: str, role: str) -> Enrolled:
    """The account, its initial password already changed (with the current step's code)."""
    enrolment = json.loads(run_cli(home, "users", "add", username, "--role", role, "--json").stdout)
    totp = pyotp.TOTP(parse_qs(urlparse(enrolment["totp_uri"]).query)["secret"][0])
    step = int(time.time() // 30)
    body = {
        "username": username,
        "password": enrolment["password"],
        "otp": totp.generate_otp(step),
        "new_password": PASSWORD,
    }
    httpx.post(f"{base}/api/auth/password", json=body).raise_for_status()
    return Enrolled(username, totp, step)
