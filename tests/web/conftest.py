"""A running appliance with two sources, a study from each, and one person of each role."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from appliance.admin import peers
from appliance.context import open_appliance
from appliance.db.tables import Role
from appliance.home import init_home
from testbed.processes import ApplianceProcess
from testbed.synthetic import FakePatient, ct_series
from tests.support.environments import FAST
from tests.support.people import Person

PATIENT_A = FakePatient("Oakenshott^Philippa", "PID-A-55120", "19580704")
PATIENT_B = FakePatient("Brindlecombe^Ezekiel", "PID-B-90311", "19720119")


@dataclass
class Site:
    appliance: ApplianceProcess
    home: Path
    study_a: list[Dataset]  # sent by source "ward-a" (AE SCU)
    study_b: list[Dataset]  # sent by source "ward-b" (AE OTHER)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.appliance.http_port}"

    def person(
        self, username: str, role: Role, sources: list[str] | None = None, modalities: list[str] | None = None
    ) -> Person:
        app = open_appliance(self.home)
        try:
            return Person.add(app, self.base, username, role, sources, modalities)
        finally:
            app.close()


def _send(port: int, calling_ae: str, datasets: list[Dataset]) -> None:
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="APPLIANCE")
    assert assoc.is_established
    try:
        for dataset in datasets:
            assert assoc.send_c_store(dataset).Status == 0x0000
    finally:
        assoc.release()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("site")
    home = root / "home"
    umask = os.umask(0o077)
    try:
        init_home(home)
        app = open_appliance(home)
        try:
            peers.add_source(app, "test", "ward-a", "SCU", "127.0.0.1", None)
            peers.add_source(app, "test", "ward-b", "OTHER", "127.0.0.1", None)
        finally:
            app.close()
    finally:
        os.umask(umask)
    process = ApplianceProcess(home, root / "appliance.out", FAST).start()
    study_a = ct_series(3, PATIENT_A, size=32, seed=1)
    for dataset in study_a:
        dataset.StudyDescription = "CT abdomen"
    study_b = ct_series(2, PATIENT_B, size=32, seed=2)
    for dataset in study_b:
        dataset.StudyDate, dataset.AccessionNumber = "20250102", "ACC20001"
    _send(process.dicom_port, "SCU", study_a)
    _send(process.dicom_port, "OTHER", study_b)
    yield Site(process, home, study_a, study_b)
    process.stop()
