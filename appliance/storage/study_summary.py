"""A study's query attributes (patient and study level, as DICOM JSON), sealed with the database
field key: written with the study's first instance, read by the DICOMweb searches."""

from __future__ import annotations

import json
from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset

from appliance.security.phi import FieldCipher

COLUMN = "study_summary.attributes"
STUDY_KEYWORDS = (
    "SpecificCharacterSet PatientName PatientID IssuerOfPatientID PatientBirthDate PatientSex "
    "StudyInstanceUID StudyDate StudyTime AccessionNumber ReferringPhysicianName StudyID "
    "StudyDescription TimezoneOffsetFromUTC"
).split()


def json_of(dataset: Dataset, keywords: list[str]) -> dict:
    """The attributes ``keywords`` of ``dataset`` that it has, as DICOM JSON."""
    chosen = Dataset()
    for keyword in keywords:
        if keyword in dataset:
            chosen[keyword] = dataset[keyword]
    return chosen.to_json_dict()


def summary_of(part10: bytes) -> dict:
    return json_of(dcmread(BytesIO(part10), stop_before_pixels=True), STUDY_KEYWORDS)


def seal(fields: FieldCipher, summary: dict) -> bytes:
    return fields.encrypt(COLUMN, json.dumps(summary))


def unseal(fields: FieldCipher, sealed: bytes) -> dict:
    return json.loads(fields.decrypt(COLUMN, sealed))
