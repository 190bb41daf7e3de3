"""Shared fixtures: an initialised appliance home, a running appliance, synthetic series."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.admin.peers import add_source
from appliance.cli.common import actor
from appliance.context import open_appliance
from appliance.home import init_home
from models import fast_paths
from tests.support.processes import ApplianceProcess
from tests.support.synthetic import FakePatient

# Short timings so assembly, retries and polling finish within a test.
FAST = {
    "APPLIANCE_ASSEMBLY__QUIET_SECONDS": "1",
    "APPLIANCE_ASSEMBLY__POLL_SECONDS": "0.2",
    "APPLIANCE_DICOM__MIN_FREE_BYTES": str(1024 * 1024),
    "APPLIANCE_SEND__BACKOFF_INITIAL_SECONDS": "0.5",
    "APPLIANCE_SEND__BACKOFF_MAX_SECONDS": "2",
    "APPLIANCE_SEND__POLL_SECONDS": "0.2",
    "APPLIANCE_INFERENCE__ENABLED": "false",  # the inference tests turn it on (see INFERENCE)
}
INFERENCE = {
    **FAST,
    "APPLIANCE_INFERENCE__ENABLED": "true",
    "APPLIANCE_INFERENCE__POLL_SECONDS": "0.2",
    "APPLIANCE_INFERENCE__RETRY_SECONDS": "0.5",
}


def pytest_configure(config: pytest.Config) -> None:
    """The test process starts as the inference process does: the library fast paths installed.
    ``models/test_fast_paths.py`` runs the library's own code in processes of its own."""
    fast_paths.install()


@pytest.fixture
def patient() -> FakePatient:
    return FakePatient()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """``appliance init`` and ``appliance sources add local-scu --ae SCU --host 127.0.0.1``, done in
    this process: the same functions the commands call, without two command starts (about 2 s each,
    nearly all imports) per test. The command line itself is tested on its own."""
    path = tmp_path / "home"
    umask = os.umask(0o077)  # as the command line sets it
    try:
        init_home(path)
        app = open_appliance(path)
        try:
            add_source(app, actor(), "local-scu", "SCU", "127.0.0.1", None)
        finally:
            app.close()
    finally:
        os.umask(umask)
    return path


@pytest.fixture
def appliance(home: Path, tmp_path: Path) -> Iterator[ApplianceProcess]:
    process = ApplianceProcess(home, tmp_path / "appliance.out", FAST).start()
    yield process
    process.stop()
