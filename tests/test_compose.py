"""docker-compose.yml is valid and wires the appliance to PostgreSQL and Orthanc."""

from __future__ import annotations

import subprocess

import yaml

from testbed.processes import REPO


def test_compose_config_is_valid_and_wired():
    env = {"PATH": "/usr/bin:/bin", "POSTGRES_PASSWORD": "test-only", "APPLIANCE_KEK": "dGVzdA=="}
    result = subprocess.run(["docker-compose", "config"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == {"appliance", "postgres", "orthanc"}
    appliance = services["appliance"]
    assert "postgresql+psycopg://" in appliance["environment"]["APPLIANCE_DATABASE_URL"]
    assert appliance["environment"]["APPLIANCE_KEYS__SOURCE"] == "env"


def test_compose_refuses_to_start_without_secrets():
    result = subprocess.run(
        ["docker-compose", "config"], cwd=REPO, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr or "APPLIANCE_KEK" in result.stderr
