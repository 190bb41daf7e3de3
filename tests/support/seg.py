"""Read a DICOM SEG back onto a phantom's grid, independently of highdicom (pydicom only)."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

VOLUME_CODE = "118565006"  # SNOMED CT "Volume"


def seg_mask(
    seg: Dataset,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    orientation: str = "axial",
    segment: int = 1,
) -> np.ndarray:
    """The segment as a bool array [x, y, z] on the phantom grid the series was drawn from."""
    origin = np.array([-(n - 1) / 2.0 * s for n, s in zip(shape, spacing, strict=True)])
    frames = seg.pixel_array
    if frames.ndim == 2:
        frames = frames[None]
    mask = np.zeros(shape, dtype=bool)
    shared = seg.SharedFunctionalGroupsSequence[0]
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence, strict=True):
        identification = group.get("SegmentIdentificationSequence") or shared.SegmentIdentificationSequence
        if int(identification[0].ReferencedSegmentNumber) != segment:
            continue
        position = np.array([float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient])
        if orientation == "axial":
            k = int(round((position[2] - origin[2]) / spacing[2]))
            mask[:, :, k] |= frame.T.astype(bool)
        else:
            j = int(round((position[1] - origin[1]) / spacing[1]))
            mask[:, j, :] |= frame.T[:, ::-1].astype(bool)
    return mask


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def sr_volumes_ml(sr: Dataset) -> list[float]:
    """Every numeric measurement named Volume in the SR's content tree, in mL."""
    found = []
    stack = list(sr.ContentSequence)
    while stack:
        item = stack.pop()
        stack.extend(item.get("ContentSequence", []))
        if item.ValueType == "NUM" and item.ConceptNameCodeSequence[0].CodeValue == VOLUME_CODE:
            measured = item.MeasuredValueSequence[0]
            assert measured.MeasurementUnitsCodeSequence[0].CodeValue == "mL"
            found.append(float(measured.NumericValue))
    return found
