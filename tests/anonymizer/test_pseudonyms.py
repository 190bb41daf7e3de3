"""Keyed pseudonyms: consistent across a study and across runs, different under another secret."""

from __future__ import annotations

import copy
from datetime import date
from io import BytesIO

from pydicom import dcmread
from pydicom.uid import generate_uid

from anonymizer.engine import Deidentifier
from anonymizer.profile import named_profile
from anonymizer.pseudonyms import Pseudonymizer, shift_da, shift_dt
from anonymizer.table import ProfileTable
from testbed.planted import UID_ROOT, PlantedPatient, planted_ct
from tests.support.secrets import OTHER_SECRET, SECRET


def _days(a: str, b: str) -> int:
    return (date(int(b[:4]), int(b[4:6]), int(b[6:])) - date(int(a[:4]), int(a[4:6]), int(a[6:]))).days


def _run(secret: bytes, table: ProfileTable, datasets: list) -> list:
    deidentifier = Deidentifier(secret, named_profile("research"), table)
    return [dcmread(BytesIO(deidentifier.deidentify(ds).encoded)) for ds in datasets]


def _study(patient: PlantedPatient, study_date: str, count: int = 2) -> list:
    study, series = generate_uid(UID_ROOT), generate_uid(UID_ROOT)
    datasets = [planted_ct(patient, i, study_uid=study, series_uid=series) for i in range(count)]
    for ds in datasets:
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
    return datasets


def test_uids_are_consistent_across_a_study_and_across_runs(
    table: ProfileTable, planted: PlantedPatient
) -> None:
    first = _study(planted, "20240305")
    originals = [(str(ds.StudyInstanceUID), str(ds.SOPInstanceUID)) for ds in first]
    again = [copy.deepcopy(ds) for ds in first]
    out = _run(SECRET, table, first)
    assert len({ds.StudyInstanceUID for ds in out}) == 1 and len({ds.SeriesInstanceUID for ds in out}) == 1
    assert all(ds.StudyInstanceUID != originals[0][0] for ds in out)
    assert all(ds.SOPInstanceUID.startswith("2.25.") and len(ds.SOPInstanceUID) <= 64 for ds in out)
    assert all(ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID for ds in out)
    rerun = _run(SECRET, table, again)  # a second run, another Deidentifier: the same UIDs
    assert [ds.SOPInstanceUID for ds in rerun] == [ds.SOPInstanceUID for ds in out]
    assert rerun[0].StudyInstanceUID == out[0].StudyInstanceUID


def test_a_patients_intervals_are_kept_and_pseudonym_is_stable(
    table: ProfileTable, planted: PlantedPatient
) -> None:
    early, late = _study(planted, "20240305", 1), _study(planted, "20241120", 1)
    out_early, out_late = _run(SECRET, table, early + late)
    assert _days(out_early.StudyDate, out_late.StudyDate) == _days("20240305", "20241120")
    assert out_early.StudyDate != "20240305"
    assert out_early.PatientID == out_late.PatientID == out_early.PatientName
    assert str(out_early.PatientID).startswith("ANON")
    assert out_early.StudyInstanceUID != out_late.StudyInstanceUID
    assert out_early.LongitudinalTemporalInformationModified == "MODIFIED"


def test_another_secret_gives_other_uids_offsets_and_pseudonyms(
    table: ProfileTable, planted: PlantedPatient
) -> None:
    datasets = _study(planted, "20240305", 1)
    duplicate = copy.deepcopy(datasets[0])
    ours, theirs = _run(SECRET, table, datasets)[0], _run(OTHER_SECRET, table, [duplicate])[0]
    assert ours.SOPInstanceUID != theirs.SOPInstanceUID
    assert ours.StudyInstanceUID != theirs.StudyInstanceUID
    assert ours.PatientID != theirs.PatientID
    assert ours.StudyDate != theirs.StudyDate


def test_pseudonymizer_primitives() -> None:
    keyed = Pseudonymizer(SECRET)
    assert keyed.uid("1.2.3") == keyed.uid("1.2.3\x00") != keyed.uid("1.2.4")
    assert keyed.patient("a") != keyed.patient("b")
    offsets = {keyed.day_offset(f"patient {i}") for i in range(200)}
    assert all(-4015 <= o <= -365 for o in offsets) and len(offsets) > 150
    assert shift_da("20240301", -1) == "20240229"
    assert shift_da("20240301-20240305", -1) == "20240229-20240304"
    assert shift_da("2024", -1) is None and shift_da("20241341", -1) is None
    assert shift_dt("20240301101112.5+0100", -1) == "20240229101112.5+0100"
