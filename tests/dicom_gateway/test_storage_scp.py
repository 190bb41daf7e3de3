"""The storage SCP against real dcmtk peers (echoscu, storescu) and a raw pynetdicom SCU."""

from __future__ import annotations

import json

import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from testbed.dcmtk import echoscu, storescu
from testbed.processes import ApplianceProcess, run_cli, wait_for
from testbed.synthetic import ct_series, write_series
from tests.support.dimse import store_bytes
from tests.support.environments import FAST
from tests.support.inspect import (
    audit_events,
    dataset_bytes_of_file,
    phi_needles,
    plaintext_hits,
    store_files,
    stored_datasets,
)

pytestmark = pytest.mark.slow


def test_series_is_indexed_encrypted_and_byte_exact(appliance, home, tmp_path, patient):
    files = write_series(tmp_path / "in", ct_series(12, patient))
    assert echoscu(appliance.dicom_port) == 0
    result = storescu(appliance.dicom_port, files)
    assert result.returncode == 0, result.stderr

    stored = stored_datasets(home)
    assert len(stored) == 12
    for path in files:
        from pydicom import dcmread

        uid = dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert stored[uid] == dataset_bytes_of_file(path)

    appliance.stop()  # flush everything the process holds, then look at every byte on disk
    hits = plaintext_hits(home, phi_needles(patient))
    assert hits == [], f"plaintext PHI under the home: {hits}"
    for path in store_files(home):
        assert dataset_bytes_of_file(files[0])[:64] not in path.read_bytes()


def test_studies_lists_series_and_completes_it_after_quiet_period(appliance, home, tmp_path, patient):
    files = write_series(tmp_path / "in", ct_series(5, patient))
    assert storescu(appliance.dicom_port, files).returncode == 0

    def state() -> list[dict]:
        return json.loads(run_cli(home, "studies", "--json").stdout)

    wait_for(lambda: state() and state()[0]["state"] == "complete", 15, "series completion")
    (row,) = state()
    assert row["instances"] == 5
    assert row["patient_id"] == patient.patient_id
    assert row["patient_name"] == patient.name


def test_assembly_resumes_after_restart(home, tmp_path, patient):
    slow = {**FAST, "APPLIANCE_ASSEMBLY__QUIET_SECONDS": "4"}
    first = ApplianceProcess(home, tmp_path / "a.out", slow).start()
    files = write_series(tmp_path / "in", ct_series(3, patient))
    assert storescu(first.dicom_port, files).returncode == 0
    first.stop()
    (row,) = json.loads(run_cli(home, "studies", "--json").stdout)
    assert row["state"] == "receiving"

    second = ApplianceProcess(home, tmp_path / "b.out", slow).start()
    try:
        wait_for(
            lambda: json.loads(run_cli(home, "studies", "--json").stdout)[0]["state"] == "complete",
            20,
            "completion after restart",
        )
    finally:
        second.stop()
    from sqlmodel import select

    from appliance.context import open_appliance
    from appliance.db.tables import Job, JobKind

    app = open_appliance(home)
    with app.session() as session:
        jobs = session.exec(select(Job).where(Job.kind == JobKind.SERIES_COMPLETE)).all()
    assert len(jobs) == 1 and jobs[0].payload["instance_count"] == 3


def test_unknown_calling_ae_is_rejected_and_recorded(appliance, home):
    assert echoscu(appliance.dicom_port, calling="INTRUDER") != 0
    rejected = [e for e in audit_events(home) if e["type"] == "Association Rejected"]
    assert rejected and rejected[-1]["participants"][0]["user_id"] == "INTRUDER"
    assert rejected[-1]["event_id"] == "110113"
    assert echoscu(appliance.dicom_port) == 0  # the server keeps serving


def test_rejection_reasons_on_the_wire(appliance, home):
    run_cli(home, "sources", "add", "far", "--ae", "FARAWAY", "--host", "10.77.0.0/16")
    cases = {
        ("INTRUDER", "APPLIANCE"): (0x01, 0x01, 0x03),
        ("SCU", "NOT-US"): (0x01, 0x01, 0x07),
        ("FARAWAY", "APPLIANCE"): (0x01, 0x01, 0x03),  # known AE, wrong host
    }
    for (calling, called), expected in cases.items():
        ae = AE(ae_title=calling)
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", appliance.dicom_port, ae_title=called)
        assert assoc.is_rejected, (calling, called)
        rj = assoc.acceptor.primitive
        assert (rj.result, rj.result_source, rj.diagnostic) == expected, (calling, called)
    descriptions = [e["description"] for e in audit_events(home) if e["type"] == "Association Rejected"]
    assert "calling AE title not allowed from this host" in descriptions
    assert "called AE title not recognised" in descriptions


def test_source_changes_apply_without_restart(appliance, home):
    assert echoscu(appliance.dicom_port, calling="LATECOMER") != 0
    run_cli(home, "sources", "add", "late", "--ae", "LATECOMER", "--host", "127.0.0.1")
    assert echoscu(appliance.dicom_port, calling="LATECOMER") == 0
    run_cli(home, "sources", "remove", "late")
    assert echoscu(appliance.dicom_port, calling="LATECOMER") != 0
    changes = [e for e in audit_events(home) if e["type"] == "Configuration Change"]
    assert [c["action"] for c in changes][-2:] == ["C", "D"]


def test_bad_input_gets_a_status_and_leaves_nothing(home, tmp_path, patient):
    env = {**FAST, "APPLIANCE_DICOM__MAX_INSTANCE_BYTES": "100000"}
    appliance = ApplianceProcess(home, tmp_path / "a.out", env).start()
    try:
        good = ct_series(1, patient, size=64)[0]
        encoded = dataset_bytes_of_file(write_series(tmp_path / "good", [good])[0])
        uid = str(good.SOPInstanceUID)
        no_uid = good.copy()
        del no_uid.SOPInstanceUID
        no_uid_bytes = dataset_bytes_of_file(write_series(tmp_path / "nouid", [no_uid])[0])
        big = ct_series(1, patient, size=256)[0]
        big_bytes = dataset_bytes_of_file(write_series(tmp_path / "big", [big])[0])
        cases = [
            ("truncated", encoded[: len(encoded) - 1000], CTImageStorage, uid, 0xC210),
            ("garbage", b"\x08\x00\x16\x00UI\xff\xff" + b"\x00" * 40, CTImageStorage, uid, 0xC210),
            ("no SOP Instance UID", no_uid_bytes, CTImageStorage, generate_uid(), 0xC211),
            ("class mismatch", encoded, MRImageStorage, uid, 0xA900),
            ("too large", big_bytes, CTImageStorage, str(big.SOPInstanceUID), 0xA700),
        ]
        for name, data, sop_class, sop_instance, expected in cases:
            result = store_bytes(
                appliance.dicom_port, data, sop_class, sop_instance, ExplicitVRLittleEndian, tmp_path
            )
            assert result.status == expected, (name, hex(result.status), result.comment)
            assert result.comment, name
            assert store_files(home) == [], f"{name} left a file behind"
            assert echoscu(appliance.dicom_port) == 0, f"server stopped serving after {name}"
        ok = store_bytes(appliance.dicom_port, encoded, CTImageStorage, uid, ExplicitVRLittleEndian, tmp_path)
        assert ok.status == 0x0000
        assert list(stored_datasets(home)) == [uid]
        failures = [e for e in audit_events(home) if e["event_id"] == "110104" and e["outcome"] != 0]
        assert len(failures) == len(cases)
    finally:
        appliance.stop()


def test_free_space_reserve_refuses_with_out_of_resources(home, tmp_path, patient):
    env = {**FAST, "APPLIANCE_DICOM__MIN_FREE_BYTES": str(10**18)}
    appliance = ApplianceProcess(home, tmp_path / "a.out", env).start()
    try:
        ds = ct_series(1, patient)[0]
        encoded = dataset_bytes_of_file(write_series(tmp_path / "in", [ds])[0])
        result = store_bytes(
            appliance.dicom_port,
            encoded,
            CTImageStorage,
            str(ds.SOPInstanceUID),
            ExplicitVRLittleEndian,
            tmp_path,
        )
        assert result.status == 0xA700 and "free-space" in result.comment
        assert store_files(home) == []
    finally:
        appliance.stop()


def test_resending_an_instance_is_idempotent(appliance, home, tmp_path, patient):
    files = write_series(tmp_path / "in", ct_series(2, patient))
    assert storescu(appliance.dicom_port, files).returncode == 0
    assert storescu(appliance.dicom_port, files).returncode == 0
    assert len(stored_datasets(home)) == 2
    assert len(store_files(home)) == 2
    (row,) = json.loads(run_cli(home, "studies", "--json").stdout)
    assert row["instances"] == 2


def test_association_limit(home, tmp_path):
    appliance = ApplianceProcess(
        home, tmp_path / "a.out", {**FAST, "APPLIANCE_DICOM__MAX_ASSOCIATIONS": "1"}
    ).start()
    try:
        ae = AE(ae_title="SCU")
        ae.add_requested_context(Verification)
        held = ae.associate("127.0.0.1", appliance.dicom_port, ae_title="APPLIANCE")
        assert held.is_established
        second = ae.associate("127.0.0.1", appliance.dicom_port, ae_title="APPLIANCE")
        assert second.is_rejected
        rj = second.acceptor.primitive
        assert (rj.result, rj.result_source, rj.diagnostic) == (0x02, 0x03, 0x02)
        held.release()
    finally:
        appliance.stop()
