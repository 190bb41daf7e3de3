"""Key rotation through the CLI while the appliance runs: rotate, store more, rewrap, retire."""

from __future__ import annotations

import pytest

from testbed.dcmtk import storescu
from testbed.processes import run_cli
from testbed.synthetic import ct_series, write_series
from tests.support.inspect import dataset_bytes_of_file, stored_datasets

pytestmark = pytest.mark.slow


def test_rotate_and_retire_on_a_running_appliance(appliance, home, tmp_path, patient):
    before = write_series(tmp_path / "a", ct_series(3, patient))
    assert storescu(appliance.dicom_port, before).returncode == 0
    old = run_cli(home, "keys", "list").stdout.split("\n")[1].split()[0]

    rotated = run_cli(home, "keys", "rotate").stdout
    assert "data keys re-wrapped" in rotated
    after = write_series(tmp_path / "b", ct_series(3, patient, seed=1))
    assert storescu(appliance.dicom_port, after).returncode == 0
    run_cli(home, "keys", "rewrap")  # anything the running gateway wrapped before it saw the new key
    run_cli(home, "keys", "retire", old)
    listed = run_cli(home, "keys", "list").stdout
    assert old not in listed

    stored = stored_datasets(home)
    assert sorted(stored.values()) == sorted(dataset_bytes_of_file(f) for f in before + after)
    refused = run_cli(home, "keys", "retire", listed.split("\n")[1].split()[0], check=False)
    assert refused.returncode == 1 and "active" in refused.stderr
