"""The same appliance on PostgreSQL: migrations, ingest, index and listing."""

from __future__ import annotations

import json

import pytest

from testbed.dcmtk import storescu
from testbed.processes import ApplianceProcess, PostgresProcess, run_cli, wait_for
from testbed.synthetic import ct_series, write_series
from tests.support.environments import FAST
from tests.support.inspect import dataset_bytes_of_file, stored_datasets

pytestmark = pytest.mark.slow


@pytest.fixture
def postgres():
    server = PostgresProcess().start()
    yield server
    server.stop()


def test_ingest_on_postgresql(postgres, tmp_path, patient, monkeypatch):
    env = {**FAST, "APPLIANCE_DATABASE_URL": postgres.url}
    monkeypatch.setenv("APPLIANCE_DATABASE_URL", postgres.url)  # for the in-test reads
    home = tmp_path / "home"
    run_cli(home, "init", env=env)
    run_cli(home, "sources", "add", "scu", "--ae", "SCU", "--host", "127.0.0.1", env=env)
    assert not (home / "appliance.db").exists()
    appliance = ApplianceProcess(home, tmp_path / "a.out", env).start()
    try:
        files = write_series(tmp_path / "in", ct_series(4, patient))
        assert storescu(appliance.dicom_port, files).returncode == 0
        wait_for(
            lambda: json.loads(run_cli(home, "studies", "--json", env=env).stdout)[0]["state"] == "complete",
            15,
            "series completion on PostgreSQL",
        )
    finally:
        appliance.stop()
    stored = stored_datasets(home)
    assert sorted(stored.values()) == sorted(dataset_bytes_of_file(f) for f in files)
