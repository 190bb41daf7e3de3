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
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

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
