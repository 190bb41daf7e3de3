"""Shared fixtures: an initialised appliance home, a running appliance, synthetic series."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ApplianceProcess, run_cli
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


@pytest.fixture
def patient() -> FakePatient:
    return FakePatient()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    run_cli(path, "init")
    run_cli(path, "sources", "add", "local-scu", "--ae", "SCU", "--host", "127.0.0.1")
    return path


@pytest.fixture
def appliance(home: Path, tmp_path: Path) -> Iterator[ApplianceProcess]:
    process = ApplianceProcess(home, tmp_path / "appliance.out", FAST).start()
    yield process
    process.stop()
