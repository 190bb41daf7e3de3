"""A DICOM SEG as a label volume on the grid of the series it segments.

The research side turns a release's SEGs into training labels with it; the appliance turns the
held-out set's reference SEGs into the labels models are validated against.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from models.volume import InconsistentSeries, Volume


def referenced_series(seg: Dataset) -> set[str]:
    """The series a SEG names in its Referenced Series Sequence."""
    return {str(item.get("SeriesInstanceUID", "")) for item in seg.get("ReferencedSeriesSequence", [])}


def _source_slice(group: Dataset, by_uid: dict[str, int], by_position: dict[tuple, int]) -> int | None:
    """The volume slice a SEG frame lies on: the image it was derived from, else its position."""
    for derivation in group.get("DerivationImageSequence", []):
        for source in derivation.get("SourceImageSequence", []):
            if source.ReferencedSOPInstanceUID in by_uid:
                return by_uid[source.ReferencedSOPInstanceUID]
    for plane in group.get("PlanePositionSequence", []):
        return by_position.get(tuple(round(float(v), 2) for v in plane.ImagePositionPatient))
    return None


def label_volume(seg: Dataset, volume: Volume) -> np.ndarray:
    """The SEG's segments on the volume's grid (uint8, 0 = background, else the segment number)."""
    labels = np.zeros(volume.array.shape, np.uint8)
    images = volume.frame_images(labels)  # a view: [k, row, column] of each source frame
    by_uid = {frame.dataset.SOPInstanceUID: k for k, frame in enumerate(volume.frames)}
    by_position = {
        tuple(round(float(v), 2) for v in frame.dataset.ImagePositionPatient): k
        for k, frame in enumerate(volume.frames)
        if "ImagePositionPatient" in frame.dataset
    }
    shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else Dataset()
    masks = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    for index, (mask, group) in enumerate(zip(masks, seg.PerFrameFunctionalGroupsSequence, strict=True)):
        k = _source_slice(group, by_uid, by_position)
        if k is None:
            raise InconsistentSeries(f"SEG frame {index + 1} lies on no image of the series it references")
        identification = group.get("SegmentIdentificationSequence") or shared.SegmentIdentificationSequence
        images[k][mask > 0] = int(identification[0].ReferencedSegmentNumber)
    return labels
