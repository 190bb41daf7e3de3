"""The HTTP port serves TLS with the configured certificate; plain HTTP is refused at start on any
address but loopback, in one line, unless allowed."""

from __future__ import annotations

import os
import ssl

import httpx
import pytest

from appliance.context import open_appliance
from appliance.db.tables import Role
from appliance.home import init_home
from testbed.processes import ApplianceProcess, free_port, run_cli
from tests.support.certs import CertificateAuthority
from tests.support.environments import FAST
from tests.support.people import Person

pytestmark = pytest.mark.slow


def _home(tmp_path):
    umask = os.umask(0o077)
    try:
        init_home(tmp_path / "home")
    finally:
        os.umask(umask)
    return tmp_path / "home"


def test_sign_in_over_tls_with_the_configured_certificate(tmp_path):
    home = _home(tmp_path)
    ca = CertificateAuthority(tmp_path / "pki", "Test Hospital CA")
    server = ca.issue("web", "localhost", server=True)
    env = {
        **FAST,
        "APPLIANCE_HTTP__TLS_CERTIFICATE": str(server.cert),
        "APPLIANCE_HTTP__TLS_PRIVATE_KEY": str(server.key),
    }
    appliance = ApplianceProcess(home, tmp_path / "out.log", env, https_ca=ca.issued.cert).start()
    try:
        app = open_appliance(home)
        try:
            person = Person.add(app, appliance.base_url, "tls-user", Role.AUDITOR)
        finally:
            app.close()
        verify = ssl.create_default_context(cafile=ca.issued.cert)
        body = {"username": person.username, "password": person.password, "otp": person.code()}
        changed = httpx.post(
            f"{appliance.base_url}/api/auth/password", json={**body, "new_password": "x" * 16}, verify=verify
        )
        assert changed.status_code == 204
        login = httpx.post(
            f"{appliance.base_url}/api/auth/login",
            json={**body, "password": "x" * 16, "otp": person.code()},
            verify=verify,
        )
        assert login.status_code == 200
        with pytest.raises(httpx.HTTPError):  # the same port does not speak plain HTTP
            httpx.get(f"http://127.0.0.1:{appliance.http_port}/health/live", timeout=5)
    finally:
        appliance.stop()


def test_plain_http_beyond_loopback_is_refused_at_start(tmp_path):
    home = _home(tmp_path)
    env = {"APPLIANCE_HTTP__HOST": "0.0.0.0", "APPLIANCE_HTTP__PORT": str(free_port())}
    result = run_cli(home, "serve", "--dicom-port", str(free_port()), check=False, env=env)
    assert result.returncode != 0
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "without TLS" in error[0] and "Traceback" not in result.stderr
