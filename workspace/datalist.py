"""A pulled release as MONAI training input: NIfTI volumes and ``datalist.json``.

Each image series becomes one NIfTI volume (uncompressed ``.nii``: int16 where the values are whole
Hounsfield units, else float32) with its geometry (``models.volume``: slices sorted
along their normal, RAS affine); a SEG in the release that references the series becomes its label
volume on the same grid (segment numbers as label values). Patients are split between training and
validation by a hash of their pseudonym, so one patient's studies never sit on both sides and the
split is the same at every pull of every version (with two patients or more, each side has one).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset

from anonymizer.release.manifest import ReleaseManifest
from models.volume import InconsistentSeries, Volume, build_volume
from workspace.pull import FILES

DATALIST = "datalist.json"
NIFTI = "nifti"
_RESULTS = {"SEG", "SR"}
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def _validation(patient: str, fraction: float) -> bool:
    return int.from_bytes(hashlib.sha256(patient.encode()).digest()[:8], "big") / 2**64 < fraction


def _referenced_series(seg: Dataset) -> set[str]:
    return {item.SeriesInstanceUID for item in seg.get("ReferencedSeriesSequence", [])}


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


def _compact(values: np.ndarray) -> np.ndarray:
    """int16 when every value is a whole number in its range (CT in HU), else float32, as given."""
    if (
        values.size
        and -32768 <= values.min()
        and values.max() <= 32767
        and np.array_equal(values, np.rint(values))
    ):
        return values.astype(np.int16)
    return np.ascontiguousarray(values)


def write_datalist(folder: Path, manifest: ReleaseManifest, validation_fraction: float = 0.2) -> dict:
    """Write the volumes and ``datalist.json`` of a pulled release; return the datalist."""
    series: dict[tuple[str, str, str], list[Path]] = defaultdict(list)
    segs: list[Path] = []
    for entry in manifest.files:
        path = folder / FILES / entry.path
        if entry.sop_class == SEG_CLASS:
            segs.append(path)
        elif entry.modality not in _RESULTS:
            patient, study, series_uid, _ = entry.path.split("/")
            series[(patient, study, series_uid)].append(path)
    seg_of: dict[str, Dataset] = {}
    for path in segs:
        seg = dcmread(path)
        for uid in _referenced_series(seg):
            seg_of[uid] = seg
    patients = sorted({key[0] for key in series})
    validation = {p for p in patients if _validation(p, validation_fraction)}
    first = min(patients, key=lambda p: hashlib.sha256(p.encode()).digest(), default="")
    if len(patients) < 2:  # one patient: it is all there is to train on
        validation = set()
    elif not validation:  # at least one patient to validate on, and one to train on
        validation = {first}
    elif validation == set(patients):
        validation.discard(first)
    datalist: dict[str, list[dict]] = {"training": [], "validation": []}
    for (patient, study, series_uid), paths in sorted(series.items()):
        volume = build_volume(dcmread(p) for p in paths)
        relative = Path(NIFTI) / patient / study / f"{series_uid}.nii"
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(_compact(volume.array), volume.affine_ras), folder / relative)
        entry = {"image": relative.as_posix(), "patient": patient, "study": study, "series": series_uid}
        if series_uid in seg_of:
            label = relative.with_name(f"{series_uid}.label.nii.gz")
            image = nib.Nifti1Image(label_volume(seg_of[series_uid], volume), volume.affine_ras)
            nib.save(image, folder / label)
            entry["label"] = label.as_posix()
        datalist["validation" if patient in validation else "training"].append(entry)
    (folder / DATALIST).write_text(json.dumps(datalist, indent=2))
    return datalist
