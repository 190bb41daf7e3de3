"""The one writer: a result made here is stored and indexed as received instances are, its series
complete as written (no assembly, no inference job), its bytes never parsed again."""

from __future__ import annotations

from io import BytesIO

from pydicom import dcmread
from pydicom.uid import generate_uid
from sqlmodel import select

from appliance.context import open_appliance
from appliance.db.tables import Instance, Job, Patient, Series, SeriesState
from appliance.pipeline.assembly import complete_quiet_series
from appliance.security.keys import WrappedKey
from appliance.storage.writer import NewObject, ObjectWriter
from dicom_gateway.received import PatientIdentity, ReceivedInstance, instance_from_part10
from testbed.synthetic import FakePatient, ct_series


def _part10(dataset_bytes: bytes) -> bytes:
    """A Part 10 file around ``dataset_bytes`` (never parsed by the writer beyond its file meta)."""
    identity = PatientIdentity("PID-7", "DOE^JANE", "19700101", "")
    return ReceivedInstance(
        "1.2.840.10008.5.1.4.1.1.66.4", generate_uid(), generate_uid(), generate_uid(), "SEG",
        "1.2.840.10008.1.2.1", identity, "APPLIANCE", "APPLIANCE", dataset_bytes,
    ).part10()  # fmt: skip


def _object(study_uid: str, complete: bool) -> NewObject:
    return NewObject(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.66.4",
        sop_instance_uid=generate_uid(),
        study_uid=study_uid,
        series_uid=generate_uid(),
        modality="SEG",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        patient=PatientIdentity("PID-7", "DOE^JANE", "19700101", ""),
        source_ae="APPLIANCE",
        called_ae="APPLIANCE",
        part10=_part10(b"not parsed: stored as given " + generate_uid().encode()),
        complete_series=complete,
    )


def test_a_result_is_written_complete_and_a_received_object_receiving(home, monkeypatch):
    monkeypatch.setenv("APPLIANCE_ASSEMBLY__QUIET_SECONDS", "0")
    app = open_appliance(home)
    writer = ObjectWriter(app)
    try:
        study = generate_uid()
        result, received = _object(study, complete=True), _object(study, complete=False)
        result_pk, received_pk = writer.write(result), writer.write(received)
        assert writer.write(result) == result_pk  # a second write of the same instance: the same row
        with app.session() as session:
            rows = {row.id: row for row in session.exec(select(Instance)).all()}
            series = {row.series_uid: row for row in session.exec(select(Series)).all()}
            patients = session.exec(select(Patient)).all()
        assert set(rows) == {result_pk, received_pk} and len(patients) == 1  # one patient, one study
        stored = rows[result_pk]
        assert app.store.get(stored.object_id, WrappedKey(stored.kek_id, stored.wrapped_key)) == result.part10
        assert series[result.series_uid].state == SeriesState.COMPLETE
        assert series[result.series_uid].completed_at is not None
        assert series[received.series_uid].state == SeriesState.RECEIVING
        completed = complete_quiet_series(app)  # only the received series becomes an inference job
        with app.session() as session:
            jobs = session.exec(select(Job)).all()
        assert completed == [series[received.series_uid].id] and len(jobs) == 1
    finally:
        writer.close()
        app.close()


def test_a_received_image_is_stored_with_its_header_apart_from_its_pixel_data(home):
    """What needs only the header (DICOMweb metadata, the inference process's first pass) reads the
    few kilobytes before the pixel data, not the half megabyte of the image."""
    series = ct_series(1, FakePatient("ROE^JANE", "PID-9", "19800101"), size=64)
    buffer = BytesIO()
    series[0].save_as(buffer, enforce_file_format=True)
    received = instance_from_part10(buffer.getvalue(), "SCU", "APPLIANCE")
    new = NewObject.received(received)
    pixel_element = new.part10.index(b"\xe0\x7f\x10\x00OW")
    assert new.header_length == pixel_element
    app = open_appliance(home)
    try:
        pk = ObjectWriter(app).write(new)
        with app.session() as session:
            row = session.get(Instance, pk)
        key = WrappedKey(row.kek_id, row.wrapped_key)
        assert app.store.path_of(row.object_id).read_bytes().startswith(b"APLOBJ2\x00")
        assert app.store.get(row.object_id, key) == new.part10
        header = app.store.get_header(row.object_id, key)
        assert header == new.part10[:pixel_element]
        assert dcmread(BytesIO(header)).PatientName == "ROE^JANE" and "PixelData" not in dcmread(
            BytesIO(header)
        )
    finally:
        app.close()
