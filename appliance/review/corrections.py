"""A clinician's SEG as the correction of an AI result: which result it corrects, and whether it can.

A SEG corrects a result when it is a Segmentation in the result's study, names the series the model
read in its Referenced Series Sequence, and is not the AI's own SEG. One that arrives over STOW-RS
(OHIF's segmentation mode saves so) corrects the newest result on the series it names; one uploaded
on the study page corrects the result it was uploaded for.
"""

from __future__ import annotations

from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import SegmentationStorage
from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import InferenceResult
from appliance.errors import ConfigError
from models.seg_labels import referenced_series


def header(part10: bytes) -> Dataset:
    """A DICOM file's attributes without its pixel data."""
    try:
        return dcmread(BytesIO(part10), stop_before_pixels=True)
    except (InvalidDicomError, ValueError, EOFError) as exc:  # the message may quote values: its kind only
        raise ConfigError(f"the file is not a DICOM object that can be read ({type(exc).__name__})") from None


def check(seg: Dataset, result: InferenceResult) -> None:
    """Refuse, saying why, a SEG that cannot be the correction of ``result``."""
    if seg.get("SOPClassUID") != SegmentationStorage:
        raise ConfigError("a correction is a DICOM Segmentation (SEG) object")
    if seg.get("StudyInstanceUID") != result.study_uid:
        raise ConfigError("the SEG is of another study")
    if result.series_uid not in referenced_series(seg):
        raise ConfigError("the SEG does not name the series the model read (Referenced Series Sequence)")
    if seg.get("SOPInstanceUID") in (result.seg_uid, result.sr_uid):
        raise ConfigError("the SEG is the AI's own result, not a correction of it")


def corrected_result(app: Appliance, seg: Dataset) -> InferenceResult | None:
    """The newest AI result on a series this SEG names, if it is a correction of one."""
    if seg.get("SOPClassUID") != SegmentationStorage:
        return None
    series = referenced_series(seg)
    with app.session() as session:
        result = session.exec(
            select(InferenceResult)
            .where(InferenceResult.study_uid == str(seg.get("StudyInstanceUID", "")))
            .where(InferenceResult.series_uid.in_(series))  # type: ignore[attr-defined]
            .order_by(InferenceResult.id.desc())  # type: ignore[union-attr]
        ).first()
    if result is None or seg.get("SOPInstanceUID") in (result.seg_uid, result.sr_uid):
        return None
    return result
