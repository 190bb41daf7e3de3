"""docker-compose.yml is valid and wires the appliance to PostgreSQL and Orthanc, with MinIO as the
research workspace: every service
has a health check, the appliance starts only once its peers are healthy, secrets come from files
(compose secrets, never environment values), Orthanc asks for authentication, and a GPU profile
reserves the GPU."""

from __future__ import annotations

import subprocess

import yaml

from testbed.processes import REPO


def _config() -> dict:
    result = subprocess.run(
        ["docker-compose", "config"], cwd=REPO, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_config_is_valid_and_wired():
    config = _config()
    services = config["services"]
    assert {"appliance", "postgres", "orthanc", "minio"} <= set(services)
    assert "version" not in yaml.safe_load((REPO / "docker-compose.yml").read_text())  # obsolete key
    appliance = services["appliance"]
    environment = appliance["environment"]
    assert environment["APPLIANCE_DATABASE_URL"] == "postgresql+psycopg://appliance@postgres:5432/appliance"
    assert environment["APPLIANCE_KEYS__SOURCE"] == "env"
    assert environment["APPLIANCE_KEK_FILE"] == "/run/secrets/appliance_kek"
    assert not any(k in environment for k in ("APPLIANCE_KEK", "POSTGRES_PASSWORD"))
    # HTTP beyond loopback is HTTPS, its certificate and key compose secrets (the appliance refuses
    # plain HTTP on 0.0.0.0), and the health probe speaks HTTPS
    assert environment["APPLIANCE_HTTP__TLS_CERTIFICATE"] == "/run/secrets/http_certificate"
    assert environment["APPLIANCE_HTTP__TLS_PRIVATE_KEY"] == "/run/secrets/http_private_key"
    assert any("https://127.0.0.1:8080/health/ready" in part for part in appliance["healthcheck"]["test"])
    assert appliance["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "orthanc": {"condition": "service_healthy"},
    }
    assert all("healthcheck" in services[name] for name in ("appliance", "postgres", "orthanc", "minio"))
    # MinIO, the S3 research workspace: its root credentials are secrets too
    assert services["minio"]["environment"] == {
        "MINIO_ROOT_USER_FILE": "/run/secrets/minio_root_user",
        "MINIO_ROOT_PASSWORD_FILE": "/run/secrets/minio_root_password",
    }
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert services["orthanc"]["environment"]["ORTHANC__AUTHENTICATION_ENABLED"] == "true"
    assert set(config["secrets"]) == {
        "appliance_kek",
        "postgres_password",
        "ORTHANC__REGISTERED_USERS",
        "http_certificate",
        "http_private_key",
        "minio_root_user",
        "minio_root_password",
    }
    assert not any("shared" in str(volume) for volume in appliance.get("volumes", []))


def test_the_gpu_profile_reserves_a_gpu():
    gpu = _config()["services"]["appliance-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]


def test_the_build_context_leaves_out_keys_homes_and_environments():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "secrets", "appliance-home", ".git"} <= set(ignored)


def test_the_image_carries_the_viewer_where_the_appliance_looks_for_it():
    """The npm stage runs the install step's pinned script (the build context keeps it); the image
    gets the static files in python:3.11-slim's prefix, where ``viewer_directory`` looks."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY scripts/fetch-viewer.sh /fetch-viewer.sh\nRUN bash /fetch-viewer.sh /viewer" in dockerfile
    assert "FROM python:3.11-slim\n" in dockerfile  # its sys.prefix is /usr/local
    assert "COPY --from=viewer /viewer /usr/local/share/ohif-viewer" in dockerfile
    assert "!scripts/fetch-viewer.sh" in (REPO / ".dockerignore").read_text().split()


def test_the_research_profile_runs_an_mlflow_tracking_server_with_its_own_volume():
    mlflow = _config()["services"]["mlflow"]
    assert mlflow["profiles"] == ["research"] and "healthcheck" in mlflow
    assert "--backend-store-uri" in mlflow["command"] and mlflow["volumes"] == ["mlflow-data:/mlflow:rw"]
