"""Synthetic DICOM objects with PHI planted in every place a de-identifier must reach.

The header, sequences several levels deep, private tags (a private sequence too), the file meta
information, free-text comments naming the patient in other orders and formats, an icon image, an
SR content tree, an encapsulated PDF and text burned into pixels or overlays. Every name and number
is invented; ``PlantedPatient.strings`` lists what must not survive, for byte searches of the output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

UID_ROOT = "1.2.826.0.1.3680043.8.498."
SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"


@dataclass(frozen=True)
class PlantedPatient:
    given: str = "Wilhelmina"
    family: str = "Quixlebottom"
    patient_id: str = "PID7382049"
    birth_date: str = "19610213"
    accession: str = "ACC88112233"
    phone: str = "555-014-9981"
    referring: str = "Fenwickshaw^Barnaby"
    operator: str = "Trundlemore^Ophelia"
    institution: str = "Saint Zebulon Memorial Hospital"
    street: str = "17 Wisteria Close"

    @property
    def name(self) -> str:
        return f"{self.family}^{self.given}"

    @property
    def strings(self) -> list[str]:
        """Planted values, as a byte search looks for them (each case-insensitively)."""
        y, m, d = self.birth_date[:4], self.birth_date[4:6], self.birth_date[6:]
        return [
            self.given,
            self.family,
            self.patient_id,
            self.birth_date,
            f"{d}/{m}/{y}",
            self.accession,
            self.phone,
            *self.referring.split("^"),
            *self.operator.split("^"),
            "Zebulon",
            "Wisteria",
        ]


def patients(count: int) -> list[PlantedPatient]:
    families = ["Quixlebottom", "Marrowstaff", "Pendlewhistle", "Gorringtide", "Ulverbrook"]
    givens = ["Wilhelmina", "Thaddeus", "Perpetua", "Ignatius", "Clementine"]
    return [
        PlantedPatient(
            given=givens[i % 5] + ("" if i < 5 else f"x{i}"),
            family=families[i % 5] + ("" if i < 5 else f"y{i}"),
            patient_id=f"PID{7382049 + i * 7919}",
            birth_date=f"{1950 + i % 40}{1 + i % 12:02d}{1 + i % 28:02d}",
            accession=f"ACC{88112233 + i}",
            phone=f"555-{100 + i:03d}-{9981 + i:04d}",
        )
        for i in range(count)
    ]


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _private(ds: Dataset, patient: PlantedPatient) -> None:
    block = ds.private_block(0x0011, "ACME PHI STORE", create=True)
    block.add_new(0x01, "LO", patient.name)
    block.add_new(0x02, "LT", f"Patient {patient.given} {patient.family} MRN {patient.patient_id}")
    inner = Dataset()
    inner_block = inner.private_block(0x0013, "ACME NESTED", create=True)
    inner_block.add_new(0x01, "LO", patient.patient_id)
    block.add_new(0x03, "SQ", Sequence([inner]))


def _header(ds: Dataset, patient: PlantedPatient, study_uid: str, series_uid: str, sop_uid: str) -> None:
    y, m, d = patient.birth_date[:4], patient.birth_date[4:6], patient.birth_date[6:]
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.FrameOfReferenceUID = generate_uid(UID_ROOT)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = patient.name, patient.patient_id, patient.birth_date
    ds.PatientSex, ds.PatientAge = "F", "063Y"
    ds.OtherPatientIDs = patient.patient_id + "-B"
    ds.PatientAddress = f"{patient.street}, Pemberly"
    ds.PatientTelephoneNumbers = patient.phone
    ds.AccessionNumber = patient.accession
    ds.ReferringPhysicianName, ds.OperatorsName = patient.referring, patient.operator
    ds.InstitutionName = patient.institution
    ds.InstitutionAddress = "42 Marrowbone Lane, Duxbury"
    ds.StationName = "ZEBULONCT1"
    ds.StudyDate, ds.SeriesDate, ds.ContentDate = "20240305", "20240305", "20240305"
    ds.StudyTime, ds.ContentTime = "101112", "101530"
    ds.StudyID = "S99812"
    ds.StudyDescription = f"CT CHEST for {patient.family.upper()} {patient.given[0]}"
    ds.SeriesDescription = f"Axial 5mm {patient.family}"
    ds.ImageComments = (
        f"{patient.given} {patient.family}, DOB {d}/{m}/{y}, MRN {patient.patient_id}, call {patient.phone}"
    )
    ds.AdditionalPatientHistory = (
        f"Patient lives at {patient.street}; seen by Dr {patient.referring.split('^')[0]}"
    )
    # Sequences several levels deep: a kept code sequence whose nested items carry free text.
    ds.RequestAttributesSequence = Sequence(
        [_item(RequestedProcedureID=patient.accession, ScheduledProcedureStepID=patient.patient_id)]
    )
    ds.AnatomicRegionSequence = Sequence(
        [
            _item(
                CodeValue="51185008",
                CodingSchemeDesignator="SCT",
                CodeMeaning="Thorax",
                AnatomicRegionModifierSequence=Sequence(
                    [
                        _item(
                            CodeValue="7771000",
                            CodingSchemeDesignator="SCT",
                            CodeMeaning=f"Left, per {patient.family}",
                            PurposeOfReferenceCodeSequence=Sequence(
                                [_item(CodeValue="1", CodingSchemeDesignator="99X", CodeMeaning=patient.name)]
                            ),
                        )
                    ]
                ),
            )
        ]
    )


def file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "ZEBULONPACS"
    return meta


def planted_ct(
    patient: PlantedPatient,
    index: int = 0,
    size: int = 64,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Dataset:
    """One CT Image Storage instance (int16 pixels with noise) carrying the patient's PHI everywhere."""
    study_uid = study_uid or generate_uid(UID_ROOT)
    series_uid = series_uid or generate_uid(UID_ROOT)
    sop_uid = generate_uid(UID_ROOT)
    ds = Dataset()
    ds.file_meta = file_meta(CTImageStorage, sop_uid)
    ds.SOPClassUID, ds.Modality = CTImageStorage, "CT"
    _header(ds, patient, study_uid, series_uid, sop_uid)
    _private(ds, patient)
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [0.0, 0.0, 2.5 * index]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 2.5
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    rng = np.random.default_rng(index)
    ds.PixelData = (rng.normal(1000, 30, (size, size))).astype(np.int16).tobytes()
    # an icon whose pixel bytes spell the patient's name
    icon_pixels = patient.name.encode().ljust(64, b" ")[:64]
    ds.IconImageSequence = Sequence(
        [
            _item(
                Rows=8,
                Columns=8,
                SamplesPerPixel=1,
                PhotometricInterpretation="MONOCHROME2",
                BitsAllocated=8,
                BitsStored=8,
                HighBit=7,
                PixelRepresentation=0,
                PixelData=icon_pixels,
            )
        ]
    )
    return ds


def planted_pdf(patient: PlantedPatient) -> Dataset:
    """An Encapsulated PDF whose document text and title name the patient."""
    sop_uid = generate_uid(UID_ROOT)
    ds = Dataset()
    ds.file_meta = file_meta(ENCAPSULATED_PDF, sop_uid)
    ds.SOPClassUID, ds.Modality = ENCAPSULATED_PDF, "DOC"
    _header(ds, patient, generate_uid(UID_ROOT), generate_uid(UID_ROOT), sop_uid)
    ds.DocumentTitle = f"Referral letter for {patient.given} {patient.family}"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.BurnedInAnnotation = "YES"
    text = f"(Patient {patient.name} DOB {patient.birth_date} MRN {patient.patient_id}) Tj"
    ds.EncapsulatedDocument = f"%PDF-1.4\nBT {text} ET\n%%EOF\n".encode()
    return ds


def planted_sr(patient: PlantedPatient) -> Dataset:
    """A Comprehensive SR whose content tree names the patient in text items two levels down."""
    sop_uid = generate_uid(UID_ROOT)
    ds = Dataset()
    ds.file_meta = file_meta(SR_STORAGE, sop_uid)
    ds.SOPClassUID, ds.Modality = SR_STORAGE, "SR"
    _header(ds, patient, generate_uid(UID_ROOT), generate_uid(UID_ROOT), sop_uid)
    code = _item(CodeValue="121071", CodingSchemeDesignator="DCM", CodeMeaning="Finding")
    leaf = _item(
        RelationshipType="CONTAINS",
        ValueType="TEXT",
        ConceptNameCodeSequence=Sequence([code]),
        TextValue=(
            f"Reviewed with {patient.given} {patient.family} (DOB {patient.birth_date}) "
            f"by phone {patient.phone}"
        ),
    )
    person = _item(
        RelationshipType="HAS OBS CONTEXT",
        ValueType="PNAME",
        ConceptNameCodeSequence=Sequence([code]),
        PersonName=patient.operator,
    )
    container = _item(
        RelationshipType="CONTAINS",
        ValueType="CONTAINER",
        ContinuityOfContent="SEPARATE",
        ConceptNameCodeSequence=Sequence([code]),
        ContentSequence=Sequence([leaf, person]),
    )
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([code])
    ds.ContentSequence = Sequence([container])
    return ds


def text_image(
    lines: list[str], size: tuple[int, int] = (480, 640), font_size: int = 28
) -> tuple[np.ndarray, np.ndarray]:
    """A grey gradient image with ``lines`` written in white near the top; also the mask of the text."""
    height, width = size
    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=font_size)
    for i, line in enumerate(lines):
        draw.text((20, 20 + i * (font_size + 14)), line, fill=255, font=font)
    text = np.asarray(image)
    background = np.tile(np.linspace(10, 90, width, dtype=np.float64), (height, 1))
    pixels = np.where(text > 0, text, background).astype(np.uint8)
    # the anatomy stands in the lower half, away from the text
    pixels[height // 2 :, width // 4 : 3 * width // 4] = 140
    return pixels, text > 0


def planted_secondary_capture(patient: PlantedPatient, lines: list[str]) -> Dataset:
    """A secondary capture (8-bit greyscale) with ``lines`` burned into its pixels."""
    sop_uid = generate_uid(UID_ROOT)
    ds = Dataset()
    ds.file_meta = file_meta(SC_STORAGE, sop_uid)
    ds.SOPClassUID, ds.Modality = SC_STORAGE, "OT"
    _header(ds, patient, generate_uid(UID_ROOT), generate_uid(UID_ROOT), sop_uid)
    pixels, _ = text_image(lines)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.BurnedInAnnotation = "YES"
    ds.PixelData = pixels.tobytes()
    return ds
