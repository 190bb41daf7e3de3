"""Synthetic CT series with planted, recognisable PHI (no real patient data anywhere).

Each series is a stack of CT Image Storage instances with real geometry (positions along the
slice normal), int16 pixel data with noise, and identifying values that the tests then look for
in plaintext on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, EnhancedCTImageStorage, ExplicitVRLittleEndian, generate_uid

UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root for generated UIDs


@dataclass(frozen=True)
class FakePatient:
    name: str = "Quixlebottom^Wilhelmina^Q"
    patient_id: str = "PID-7382049"
    birth_date: str = "19610213"


def ct_series(
    count: int,
    patient: FakePatient = FakePatient(),
    size: int = 64,
    seed: int = 0,
    study_uid: str | None = None,
) -> list[Dataset]:
    rng = np.random.default_rng(seed)
    study_uid = study_uid or generate_uid(UID_ROOT)
    series_uid = generate_uid(UID_ROOT)
    frame_of_reference = generate_uid(UID_ROOT)
    datasets = []
    for index in range(count):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid(UID_ROOT)
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientName = patient.name
        ds.PatientID = patient.patient_id
        ds.PatientBirthDate = patient.birth_date
        ds.PatientSex = "F"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_of_reference
        ds.StudyDate = "20260315"
        ds.StudyTime = "101500"
        ds.AccessionNumber = "ACC99117"
        ds.Modality = "CT"
        ds.BodyPartExamined = "ABDOMEN"
        ds.SeriesDescription = "synthetic abdomen"
        ds.StudyID = "1"
        ds.SeriesNumber = 1
        ds.InstanceNumber = index + 1
        ds.ImagePositionPatient = [-160.0, -160.0, -100.0 + 2.5 * index]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [320.0 / size, 320.0 / size]
        ds.SliceThickness = 2.5
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        pixels = rng.normal(1024, 40, (size, size)).astype(np.int16)
        ds.PixelData = pixels.tobytes()
        datasets.append(ds)
    return datasets


def write_series(directory: Path, datasets: list[Dataset]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, ds in enumerate(datasets):
        path = directory / f"ct{index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def phantom_series(
    hu: np.ndarray,
    spacing: tuple[float, float, float],
    orientation: str = "axial",
    rescale: tuple[float, float] = (1.0, -1024.0),
    patient: FakePatient = FakePatient(),
    seed: int = 0,
) -> list[Dataset]:
    """A CT series of a phantom (``hu`` indexed [x, y, z] on LPS axes, centred on the origin).

    ``axial`` slices along z; ``coronal`` slices along y with rows running from superior to
    inferior. Stored values are ``(hu - intercept) / slope`` as int16.
    """
    slope, intercept = rescale
    shape = hu.shape
    origin = np.array([-(n - 1) / 2.0 * s for n, s in zip(shape, spacing, strict=True)])
    dx, dy, dz = spacing
    if orientation == "axial":
        frames = [hu[:, :, k].T for k in range(shape[2])]
        positions = [origin + [0.0, 0.0, k * dz] for k in range(shape[2])]
        iop, pixel_spacing = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [dy, dx]
    elif orientation == "coronal":
        frames = [hu[:, j, ::-1].T for j in range(shape[1])]
        top = origin[2] + (shape[2] - 1) * dz
        positions = [np.array([origin[0], origin[1] + j * dy, top]) for j in range(shape[1])]
        iop, pixel_spacing = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0], [dz, dx]
    else:
        raise ValueError(orientation)
    datasets = ct_series(len(frames), patient, size=1, seed=seed)
    for ds, frame, position in zip(datasets, frames, positions, strict=True):
        stored = np.rint((frame.astype(np.float64) - intercept) / slope).astype(np.int16)
        ds.Rows, ds.Columns = stored.shape
        ds.PixelData = np.ascontiguousarray(stored).tobytes()
        ds.ImagePositionPatient = [round(float(v), 4) for v in position]
        ds.ImageOrientationPatient = iop
        ds.PixelSpacing = pixel_spacing
        ds.SliceThickness = spacing[1] if orientation == "coronal" else dz
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    return datasets


def enhanced_ct(datasets: list[Dataset]) -> Dataset:
    """One Enhanced CT Image (multi-frame) holding the given single-frame slices, frames shuffled."""
    first = datasets[0]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword in (
        "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "SeriesInstanceUID",
        "FrameOfReferenceUID", "StudyDate", "StudyTime", "AccessionNumber", "Modality", "StudyID",
        "SeriesNumber", "SeriesDescription", "BodyPartExamined", "SamplesPerPixel",
        "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
        "PixelRepresentation",
    ):  # fmt: skip
        setattr(ds, keyword, getattr(first, keyword))
    ds.SOPClassUID = EnhancedCTImageStorage
    ds.SOPInstanceUID = generate_uid(UID_ROOT)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.NumberOfFrames = len(datasets)
    shared = Dataset()
    measures, orientation, transform = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = first.PixelSpacing, first.SliceThickness
    orientation.ImageOrientationPatient = first.ImageOrientationPatient
    transform.RescaleSlope, transform.RescaleIntercept = first.RescaleSlope, first.RescaleIntercept
    transform.RescaleType = "HU"
    shared.PixelMeasuresSequence = [measures]
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelValueTransformationSequence = [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for item in datasets:
        position = Dataset()
        position.ImagePositionPatient = item.ImagePositionPatient
        group = Dataset()
        group.PlanePositionSequence = [position]
        frames.append(group)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = b"".join(item.PixelData for item in datasets)
    return ds
