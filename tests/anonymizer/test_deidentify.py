"""PHI planted everywhere is gone after de-identification; what the image needs is kept."""

from __future__ import annotations

import copy
from io import BytesIO

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import pack_bits
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from anonymizer.engine import Deidentifier
from anonymizer.gate import phi_hits
from anonymizer.identity import identity_of
from anonymizer.pixels import find_text
from anonymizer.profile import Option, Profile, SafePrivate, named_profile
from anonymizer.table import ProfileTable
from testbed.planted import (
    PlantedPatient,
    planted_ct,
    planted_pdf,
    planted_secondary_capture,
    planted_sr,
    text_image,
)
from tests.support.secrets import SECRET


def byte_leaks(encoded: bytes, values: list[str]) -> list[str]:
    """An independent check: a plain case-insensitive byte search of the whole output file."""
    low = encoded.lower()
    return [value for value in values if value.lower().encode() in low]


def ocr_words(pixels: np.ndarray) -> set[str]:
    grey = pixels.astype(np.float64)
    scaled = ((grey - grey.min()) * (255.0 / max(grey.max() - grey.min(), 1))).astype(np.uint8)
    return {text.lower().strip(".,:;") for _, _, text in find_text(scaled)}


def planted_words(patient: PlantedPatient) -> set[str]:
    return {patient.family.lower(), patient.given.lower(), patient.patient_id.lower(), "zebulon"}


def _with_overlay(ds: Dataset, patient: PlantedPatient) -> None:
    _, mask = text_image([patient.family, patient.patient_id], size=(ds.Rows, ds.Columns), font_size=28)
    ds.add_new(0x60000010, "US", ds.Rows)
    ds.add_new(0x60000011, "US", ds.Columns)
    ds.add_new(0x60000022, "LO", f"annotation by {patient.given}")  # Overlay Description
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", pack_bits(mask.astype(np.uint8).reshape(-1)))
    ds.add_new(0x60004000, "LT", f"Overlay drawn for {patient.family}, {patient.patient_id}")


def test_ct_with_phi_everywhere_leaves_none(
    research: Deidentifier, table: ProfileTable, planted: PlantedPatient
) -> None:
    original = planted_ct(planted, size=256)
    _with_overlay(original, planted)
    original_uids = [
        str(original.SOPInstanceUID),
        str(original.StudyInstanceUID),
        str(original.SeriesInstanceUID),
    ]
    pixels = original.pixel_array.copy()
    identity = identity_of(original, research.profile, table)
    outcome = research.deidentify(copy.deepcopy(original))
    assert outcome.report.quarantined is None and outcome.encoded is not None
    assert byte_leaks(outcome.encoded, planted.strings + original_uids) == []
    assert phi_hits(outcome.encoded, identity) == []
    out = dcmread(BytesIO(outcome.encoded))
    # private tags (and the private sequence inside them) and the icon are gone; file meta names the new UID
    assert not any(element.tag.is_private for element in out.iterall())
    assert "IconImageSequence" not in out and "IconImageSequence" in outcome.report.removed
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID != original.SOPInstanceUID
    # nested free text scrubbed, codes kept
    region = out.AnatomicRegionSequence[0]
    assert region.CodeValue == "51185008" and region.CodeMeaning == "Thorax"
    assert region.AnatomicRegionModifierSequence[0].CodeMeaning == "Left, per ***"
    assert "***" in out.ImageComments and "***" in out.StudyDescription
    # what the image needs is unchanged
    assert np.array_equal(out.pixel_array, pixels)
    assert out.ImagePositionPatient == original.ImagePositionPatient
    assert out.PixelSpacing == original.PixelSpacing and out.RescaleIntercept == original.RescaleIntercept
    assert out.PatientSex == "F" and out.PatientAge == "063Y"  # Retain Patient Characteristics
    # overlay kept (Clean Graphics) with its text cleared and its comments scrubbed
    assert ocr_words(out.overlay_array(0x6000) * 255) & planted_words(planted) == set()
    assert out[0x60004000].value.startswith("Overlay drawn for ***")
    # the record of what was done
    assert out.PatientIdentityRemoved == "YES"
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert {"113100", "113107", "113105", "113104", "113103", "113108"} <= codes
    report = outcome.report
    assert {"ImageComments", "StudyDescription", "CodeMeaning"} <= report.scrubbed
    assert {"StudyInstanceUID", "SOPInstanceUID"} <= report.remapped_uids
    assert "PatientAddress" in report.removed and report.private_removed == 4
    assert report.redacted_boxes > 0  # the overlay's words


def test_sr_content_tree_text_is_scrubbed(research: Deidentifier, planted: PlantedPatient) -> None:
    outcome = research.deidentify(planted_sr(planted))
    assert outcome.encoded is not None and byte_leaks(outcome.encoded, planted.strings) == []
    out = dcmread(BytesIO(outcome.encoded))
    text_item, person_item = out.ContentSequence[0].ContentSequence
    assert text_item.TextValue.startswith("Reviewed with ***")
    assert person_item.PersonName == "ANONYMIZED"


@pytest.mark.parametrize("compressed", [False, True])
def test_burned_in_text_is_blacked_out(
    research: Deidentifier, planted: PlantedPatient, compressed: bool
) -> None:
    lines = [f"{planted.family} {planted.given}", f"ID {planted.patient_id}", "ZEBULON HOSPITAL"]
    original = planted_secondary_capture(planted, lines)
    before = original.pixel_array.copy()
    assert ocr_words(before) & planted_words(planted) == planted_words(planted)  # OCR reads the planted text
    if compressed:
        original.compress(RLELossless)
    outcome = research.deidentify(original)
    assert outcome.encoded is not None and outcome.report.redacted_boxes >= 4
    out = dcmread(BytesIO(outcome.encoded))
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    after = out.pixel_array
    assert ocr_words(after) & planted_words(planted) == set()
    changed = np.argwhere(after != before)
    text_band = 20 + len(lines) * 42 + 10  # where text_image writes the lines, with the box margin
    assert changed[:, 0].max() < text_band  # nothing outside the text boxes changed
    assert np.array_equal(after[text_band:], before[text_band:])
    assert (after[changed[:, 0], changed[:, 1]] == before.min()).all()  # boxes are blacked out
    assert "113101" in {item.CodeValue for item in out.DeidentificationMethodCodeSequence}


def test_encapsulated_document_is_replaced(research: Deidentifier, planted: PlantedPatient) -> None:
    outcome = research.deidentify(planted_pdf(planted))
    assert outcome.encoded is not None and byte_leaks(outcome.encoded, planted.strings) == []
    out = dcmread(BytesIO(outcome.encoded))
    assert out.EncapsulatedDocument == b"\x00\x00" and "EncapsulatedDocument" in outcome.report.replaced
    assert out.DocumentTitle == "Referral letter for *** ***"
    assert out.MIMETypeOfEncapsulatedDocument == "application/pdf"


def test_at_risk_pixels_that_cannot_be_decoded_are_quarantined(
    research: Deidentifier, planted: PlantedPatient
) -> None:
    original = planted_secondary_capture(planted, ["x"])
    original.compress(RLELossless)
    original.PixelData = original.PixelData[:200]  # truncated RLE segments
    outcome = research.deidentify(original)
    assert outcome.encoded is None
    assert outcome.report.quarantined.startswith("pixel data at risk of burned-in text cannot be decoded")


def test_gate_finds_variants_and_never_quotes_them(research: Deidentifier, table: ProfileTable) -> None:
    patient = PlantedPatient()
    original = planted_ct(patient)
    identity = identity_of(original, research.profile, table)
    raw = BytesIO()
    original.save_as(raw, enforce_file_format=True)
    hits = phi_hits(raw.getvalue(), identity)
    assert any(hit.startswith("PatientName in (0010,0010)") for hit in hits)
    implicit = BytesIO()  # an encoding the byte walker leaves to pydicom: the same hits
    original.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    original.save_as(implicit, enforce_file_format=True)
    original.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    implicit_hits = phi_hits(implicit.getvalue(), identity)
    assert {hit.split(" in ")[0] for hit in implicit_hits} == {hit.split(" in ")[0] for hit in hits}
    assert all(patient.family.lower() not in hit.lower() and patient.patient_id not in hit for hit in hits)
    for variant, label in [
        ("seen 13 February 1961", "PatientBirthDate"),
        ("dob 02/13/1961", "PatientBirthDate"),
        ("QUIXLEBOTTOM w.", "PatientName"),
        ("mrn pid-738-2049", "PatientID"),
        ("SAINT-ZEBULON memorial  hospital", "InstitutionName"),
    ]:
        probe = Dataset()
        probe.SOPClassUID, probe.SOPInstanceUID = "1.2.3", "1.2.3.4"
        probe.ImageComments = variant
        probe.file_meta = original.file_meta
        buffer = BytesIO()
        probe.save_as(buffer, enforce_file_format=True)
        assert any(label in hit for hit in phi_hits(buffer.getvalue(), identity)), variant
    # a value the profile keeps on purpose is not identifying: Retain Institution Identity
    keeps = Profile(name="k", options=[Option.retain_institution_identity])
    assert not any("InstitutionName" in label for label, _, _ in identity_of(original, keeps, table).needles)


def test_a_leak_the_profile_missed_is_blocked_by_the_gate(
    table: ProfileTable, planted: PlantedPatient
) -> None:
    # Retain Device Identity keeps Station Name; planting the patient's name there must still be caught
    keeps_station = Deidentifier(SECRET, Profile(name="d", options=[Option.retain_device_identity]), table)
    original = planted_ct(planted)
    original.StationName = planted.family[:16]
    outcome = keeps_station.deidentify(original)
    assert outcome.encoded is None
    assert outcome.report.quarantined == "PHI gate: PatientName in (0008,1010) StationName"


def test_safe_private_attributes_are_kept_only_when_listed(
    table: ProfileTable, planted: PlantedPatient
) -> None:
    profile = Profile(
        name="safe",
        options=[Option.retain_safe_private],
        safe_private=[SafePrivate(creator="ACME SAFE", group=0x0019, element=0x10)],
    )
    original = planted_ct(planted)
    block = original.private_block(0x0019, "ACME SAFE", create=True)
    block.add_new(0x10, "DS", "1.5")
    block.add_new(0x11, "LO", planted.family)
    outcome = Deidentifier(SECRET, profile, table).deidentify(original)
    out = dcmread(BytesIO(outcome.encoded))
    kept = [element for element in out if element.tag.is_private]
    assert [(e.tag, e.value) for e in kept] == [(0x00190010, "ACME SAFE"), (0x00191010, "1.5")]
    assert byte_leaks(outcome.encoded, planted.strings) == []


def test_basic_profile_removes_dates_and_graphics(table: ProfileTable, planted: PlantedPatient) -> None:
    original = planted_ct(planted, size=128)
    _with_overlay(original, planted)
    content_date = original.ContentDate
    outcome = Deidentifier(SECRET, named_profile("basic"), table).deidentify(original)
    out = dcmread(BytesIO(outcome.encoded))
    assert out.StudyDate == "" and out.PatientBirthDate == ""
    assert "ContentDate" not in out or out.ContentDate != content_date  # D: a dummy (shifted) date
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert not any(element.tag.group == 0x6000 for element in out)
    assert "StudyDescription" not in out and out.PatientSex == ""
    assert byte_leaks(outcome.encoded, planted.strings) == []


def test_the_same_input_gives_the_same_bytes(research: Deidentifier, planted: PlantedPatient) -> None:
    original = planted_ct(planted)
    first = research.deidentify(copy.deepcopy(original)).encoded
    assert first == research.deidentify(copy.deepcopy(original)).encoded
