"""Against a real ``appliance serve``: a conflicting duplicate is refused and audited with both
patients, never acknowledged as stored; a receipt acknowledged before kill -9 is audited at the
next start, marked as recovered."""

from __future__ import annotations

import copy

import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE

from dicom_gateway import status
from testbed.processes import ApplianceProcess
from testbed.synthetic import FakePatient, ct_series
from tests.support.environments import FAST
from tests.support.inspect import audit_events, stored_datasets

pytestmark = pytest.mark.slow


def _association(port: int):  # type: ignore[no-untyped-def]
    ae = AE(ae_title="SCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="APPLIANCE")
    assert assoc.is_established
    return assoc


def test_a_conflicting_duplicate_is_refused_and_audited_with_both_patients(appliance, home):
    (original,) = ct_series(1, FakePatient())
    other_patient = copy.deepcopy(original)
    other_patient.PatientID, other_patient.PatientName = "PID-5550123", "Otherperson^Agatha"
    other_pixels = copy.deepcopy(original)
    other_pixels.PixelData = bytes(len(original.PixelData))

    legitimate = _association(appliance.dicom_port)  # another sender's series, while the attack runs
    series = ct_series(20)
    assoc = _association(appliance.dicom_port)
    statuses = []
    for index, ds in enumerate((original, original, other_patient, other_pixels)):
        statuses.append(int(assoc.send_c_store(ds).Status))
        assert all(int(legitimate.send_c_store(s).Status) == 0 for s in series[index * 5 : index * 5 + 5])
    assoc.release()
    legitimate.release()
    expected = [status.SUCCESS, status.SUCCESS, status.CONFLICTING_DUPLICATE, status.CONFLICTING_DUPLICATE]
    assert statuses == expected

    stored = stored_datasets(home)
    assert len(stored) == 21 and original.SOPInstanceUID in stored  # the first copy, unchanged
    assert b"PID-5550123" not in stored[original.SOPInstanceUID]

    appliance.stop()
    events = audit_events(home)
    conflicts = [e for e in events if e["type"] == "Conflicting Duplicate"]
    assert len(conflicts) == 2 and all(e["outcome"] == 4 for e in conflicts)
    patients = {o["id"] for o in conflicts[0]["objects"] if o["kind"] == "patient"}
    assert patients == {"PID-5550123", FakePatient().patient_id}
    transferred = [e for e in events if e["event"] == "DICOM Instances Transferred" and e["type"] is None]
    stored_events = [e for e in transferred if e["outcome"] == 0]
    (refused,) = [e for e in transferred if e["outcome"] != 0]
    assert sorted(e["description"] for e in stored_events) == ["instances=2", "instances=20"]
    assert refused["description"] == (
        "instances=2; refused: 0xA9D0 SOP Instance UID already stored with other content (x2)"
    )
    assert {o["id"] for o in refused["objects"] if o["kind"] == "patient"} == {
        "PID-5550123",
        FakePatient().patient_id,
    }


def test_receipts_acknowledged_before_kill_9_are_audited_at_the_next_start(home, tmp_path):
    first = ApplianceProcess(home, tmp_path / "first.out", FAST).start()
    assoc = _association(first.dicom_port)
    responses = [assoc.send_c_store(ds) for ds in ct_series(12)]
    assert [int(r.Status) for r in responses] == [status.SUCCESS] * 12
    first.kill9()  # mid-association: its transfer event was never written
    assoc.abort()
    transfers = [e for e in audit_events(home) if e["event"] == "DICOM Instances Transferred"]
    assert transfers == []

    second = ApplianceProcess(home, tmp_path / "second.out", FAST).start()
    after = _association(second.dicom_port)  # a sender stores again after the crash
    assert all(int(after.send_c_store(ds).Status) == 0 for ds in ct_series(5))
    after.release()
    second.stop()
    recovered = [
        e for e in audit_events(home)
        if e["event"] == "DICOM Instances Transferred" and e["description"].startswith("recovered")
    ]  # fmt: skip
    assert len(recovered) == 1 and recovered[0]["description"].endswith("instances=12")
    normal = [e for e in audit_events(home) if e["description"] == "instances=5"]
    assert len(normal) == 1  # the new receipts recorded as usual, not recovered
    assert {"patient", "study"} <= {o["kind"] for o in recovered[0]["objects"]}

    third = ApplianceProcess(home, tmp_path / "third.out", FAST).start()  # recovered once only
    third.stop()
    again = [e for e in audit_events(home) if e["description"].startswith("recovered")]
    assert len(again) == 1
