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
from models.seg_labels import label_volume, referenced_series
from models.volume import build_volume
from workspace.pull import FILES

DATALIST = "datalist.json"
NIFTI = "nifti"
_RESULTS = {"SEG", "SR"}
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def _validation(patient: str, fraction: float) -> bool:
    return int.from_bytes(hashlib.sha256(patient.encode()).digest()[:8], "big") / 2**64 < fraction


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
        for uid in referenced_series(seg):
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
