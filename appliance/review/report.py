"""A clinician's assessment of an AI result as a DICOM SR for the PACS: so that the PACS keeps the
decision beside the result (IHE AIRAI's assessment, in a Basic Text SR).

The report is in the AI result's study, a series of its own, and names the AI's SEG and SR as its
evidence; its content says who decided what, and why when rejected. The decision's code comes
from a local coding scheme (``99APPLIANCE``), as no standard code names an AI assessment yet.
"""

from __future__ import annotations

from datetime import datetime

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian, generate_uid

ASSESSMENT_SERIES_NUMBER = 9003
_SCHEME = "99APPLIANCE"
_PATIENT_AND_STUDY = (
    "SpecificCharacterSet PatientName PatientID IssuerOfPatientID PatientBirthDate PatientSex "
    "StudyInstanceUID StudyDate StudyTime AccessionNumber ReferringPhysicianName StudyID"
).split()


def _code(value: str, meaning: str, scheme: str = _SCHEME) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def _item(value_type: str, name: Dataset, **values: object) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([name])
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _evidence(study_uid: str, references: list[Dataset]) -> Sequence:
    by_series: dict[str, list[Dataset]] = {}
    for ref in references:
        by_series.setdefault(str(ref.SeriesInstanceUID), []).append(ref)
    study = Dataset()
    study.StudyInstanceUID = study_uid
    study.ReferencedSeriesSequence = Sequence()
    for series_uid, items in by_series.items():
        series = Dataset()
        series.SeriesInstanceUID = series_uid
        series.ReferencedSOPSequence = Sequence()
        for ref in items:
            sop = Dataset()
            sop.ReferencedSOPClassUID, sop.ReferencedSOPInstanceUID = ref.SOPClassUID, ref.SOPInstanceUID
            series.ReferencedSOPSequence.append(sop)
        study.ReferencedSeriesSequence.append(series)
    return Sequence([study])


def assessment_report(
    ai_report: Dataset,
    references: list[Dataset],
    decision: str,
    reason: str,
    observer: str,
    model: str,
    now: datetime,
) -> Dataset:
    """The SR that records ``observer``'s ``decision`` on the result whose objects are ``references``
    (the SEG's and SR's headers), in the study of ``ai_report`` (whose patient and study it copies)."""
    ds = Dataset()
    for keyword in _PATIENT_AND_STUDY:
        if keyword in ai_report:
            ds[keyword] = ai_report[keyword]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = BasicTextSRStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
        ds.SOPClassUID,
        ds.SOPInstanceUID,
    )
    ds.Modality = "SR"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = ASSESSMENT_SERIES_NUMBER, 1
    ds.SeriesDescription = f"Assessment of {model}"[:64]
    ds.Manufacturer = "imaging-appliance"
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = ds.ContentDate, ds.ContentTime
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([_code("AI-ASSESSMENT", "AI result assessment")])
    ds.CurrentRequestedProcedureEvidenceSequence = _evidence(str(ai_report.StudyInstanceUID), references)
    content = [
        _item("TEXT", _code("AI-MODEL", "Assessed AI result"), TextValue=model[:1024]),
        _item(
            "CODE",
            _code("AI-DECISION", "Decision"),
            ConceptCodeSequence=Sequence([_code(decision.upper(), decision)]),
        ),
        _item("PNAME", _code("AI-OBSERVER", "Assessed by"), PersonName=observer[:64]),
    ]
    if reason:
        content.append(_item("TEXT", _code("AI-REASON", "Reason"), TextValue=reason[:1024]))
    ds.ContentSequence = Sequence(content)
    return ds
