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
from testbed.processes import ApplianceProcess
from testbed.synthetic import FakePatient
from tests.support.environments import FAST


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
