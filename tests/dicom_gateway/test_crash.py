"""kill -9 while storescu is sending: every acknowledged instance survives, intact."""

from __future__ import annotations

import re

import pytest
from pydicom import dcmread

from testbed.dcmtk import storescu_verbose
from testbed.processes import ApplianceProcess
from testbed.synthetic import ct_series, write_series
from tests.support.environments import FAST
from tests.support.inspect import dataset_bytes_of_file, stored_datasets

pytestmark = pytest.mark.slow

SENDING = re.compile(r"Sending file: (\S+)")
RESPONSE = re.compile(r"Received Store Response \((\w+)")


def test_kill_9_during_storescu_loses_no_acknowledged_instance(home, tmp_path, patient):
    files = write_series(tmp_path / "in", ct_series(400, patient, size=128))
    appliance = ApplianceProcess(home, tmp_path / "a.out", FAST).start()
    sender = storescu_verbose(appliance.dicom_port, files)
    acknowledged: list[str] = []
    current: str | None = None
    assert sender.stdout is not None
    for line in sender.stdout:
        if match := SENDING.search(line):
            current = match.group(1)
        elif (match := RESPONSE.search(line)) and current:
            if match.group(1) == "Success":
                acknowledged.append(current)
            current = None
            if len(acknowledged) == 60:
                appliance.kill9()
    sender.wait()
    assert 60 <= len(acknowledged) < len(files), "the kill did not land mid-transfer"

    restarted = ApplianceProcess(home, tmp_path / "b.out", FAST).start()
    restarted.stop()
    stored = stored_datasets(home)
    for path in acknowledged:
        uid = dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert uid in stored, f"acknowledged instance {uid} lost"
        assert stored[uid] == dataset_bytes_of_file(tmp_path / "in" / path.split("/")[-1])
