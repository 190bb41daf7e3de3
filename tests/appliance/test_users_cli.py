"""``appliance users``: enrolment shown once, lists without secrets, one-line errors."""

from __future__ import annotations

import json

import pytest

from testbed.processes import run_cli

pytestmark = pytest.mark.slow


def test_users_add_list_roles_disable_reset(home):
    added = json.loads(run_cli(home, "users", "add", "bob", "--role", "clinician", "--json").stdout)
    assert set(added) == {"username", "password", "totp_uri"} and len(added["password"]) >= 20
    assert added["totp_uri"].startswith("otpauth://totp/") and "secret=" in added["totp_uri"]
    listed = run_cli(home, "users", "list", "--json").stdout
    assert added["password"] not in listed and "argon2" not in listed and "secret" not in listed
    assert json.loads(listed)[0]["must_change_password"] is True

    roles = run_cli(
        home, "users", "roles", "bob", "--role", "clinician", "--sources", "local-scu", "--modalities", "ct"
    )
    assert "sources local-scu, modalities CT" in roles.stdout
    refused = run_cli(
        home, "users", "roles", "bob", "--role", "researcher", "--sources", "local-scu", check=False
    )
    assert (
        refused.returncode == 1 and "only a clinician" in refused.stderr and "Traceback" not in refused.stderr
    )

    bad = run_cli(home, "users", "add", "no spaces", "--role", "admin", check=False)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "not usable" in bad.stderr
    twice = run_cli(home, "users", "add", "bob", "--role", "admin", check=False)
    assert twice.returncode == 1 and "users reset bob" in twice.stderr

    assert "disabled" in run_cli(home, "users", "disable", "bob").stdout
    assert json.loads(run_cli(home, "users", "list", "--json").stdout)[0]["disabled"] is True
    again = json.loads(run_cli(home, "users", "reset", "bob", "--json").stdout)
    assert again["password"] != added["password"] and again["totp_uri"] != added["totp_uri"]
    assert json.loads(run_cli(home, "users", "list", "--json").stdout)[0]["disabled"] is False
