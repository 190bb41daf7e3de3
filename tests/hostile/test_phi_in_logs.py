"""Planted PHI in malformed places of a received instance, and of a file to de-identify, reaches
no log and no output stream: library warnings are scrubbed of the values they quote."""

from __future__ import annotations

import struct

import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from testbed.processes import ApplianceProcess, run_cli
from tests.support.dimse import store_bytes
from tests.support.environments import FAST

pytestmark = pytest.mark.slow

NAME, MRN = "Quixlebottom^Wilhelmina", "PID7382049"
NEEDLES = [b"quixlebottom", b"wilhelmina", MRN.lower().encode(), b"7382049"]


def _element(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if len(value) % 2:
        value += b" " if vr not in (b"UI",) else b"\x00"
    if vr == b"OW":
        return struct.pack("<HH", group, element) + vr + b"\x00\x00" + struct.pack("<L", len(value)) + value
    return struct.pack("<HH", group, element) + vr + struct.pack("<H", len(value)) + value


def _dataset(sop_uid: str, **bad: bytes) -> bytes:
    """A CT header in Explicit VR Little Endian, each element given in ``bad`` replacing its value."""
    values = {
        "study_date": (0x0008, 0x0020, b"DA", b"20240101"),
        "modality": (0x0008, 0x0060, b"CS", b"CT"),
        "sop_class": (0x0008, 0x0016, b"UI", CTImageStorage.encode()),
        "sop_instance": (0x0008, 0x0018, b"UI", sop_uid.encode()),
        "patient_name": (0x0010, 0x0010, b"PN", b"Doe^Jane"),
        "patient_id": (0x0010, 0x0020, b"LO", b"P-1"),
        "birth_date": (0x0010, 0x0030, b"DA", b"19700101"),
        "slice_thickness": (0x0018, 0x0050, b"DS", b"1.5"),
        "study_uid": (0x0020, 0x000D, b"UI", generate_uid().encode()),
        "series_uid": (0x0020, 0x000E, b"UI", generate_uid().encode()),
        "instance_number": (0x0020, 0x0013, b"IS", b"1"),
        "rows": (0x0028, 0x0010, b"US", struct.pack("<H", 2)),
        "columns": (0x0028, 0x0011, b"US", struct.pack("<H", 2)),
        "bits_allocated": (0x0028, 0x0100, b"US", struct.pack("<H", 16)),
        "pixel_data": (0x7FE0, 0x0010, b"OW", bytes(8)),
    }
    elements = []
    for key, (group, element, vr, value) in sorted(values.items(), key=lambda kv: (kv[1][0], kv[1][1])):
        elements.append(_element(group, element, vr, bad.get(key, value)))
    return b"".join(elements)


PLANTED = f"{NAME} {MRN}".encode()
CASES = {  # where the PHI is planted -> the status the appliance answers
    "series_uid": 0xC211,
    "study_uid": 0xC211,
    "sop_instance": 0xC211,
    "study_date": 0x0000,
    "birth_date": 0x0000,
    "modality": 0x0000,
    "slice_thickness": 0x0000,
    "instance_number": 0x0000,
}


def test_planted_phi_in_malformed_values_reaches_no_log_or_stream(home, tmp_path):
    appliance = ApplianceProcess(home, tmp_path / "appliance.out", FAST).start()
    try:
        for place, expected in CASES.items():
            sop_uid = generate_uid()
            data = _dataset(sop_uid, **{place: PLANTED})
            affected = PLANTED.decode() if place == "sop_instance" else sop_uid
            result = store_bytes(
                appliance.dicom_port, data, CTImageStorage, affected, ExplicitVRLittleEndian, tmp_path
            )
            assert result.status == expected, (place, hex(result.status), result.comment)
    finally:
        appliance.stop()

    source = tmp_path / "source"
    source.mkdir()
    scratch = sorted(tmp_path.glob("raw-*.dcm"))  # the SCU helper's Part 10 copies of what it sent
    assert len(scratch) == len(CASES)
    for number, path in enumerate(scratch):  # the same malformed objects, as files to de-identify
        (source / f"{number:02}.dcm").write_bytes(path.read_bytes())
    anonymized = run_cli(home, "anonymize", str(source), str(tmp_path / "out"), "--workers", "1", check=False)

    streams = {
        "appliance log": (home / "logs" / "appliance.log").read_bytes(),
        "appliance stdout and stderr": (tmp_path / "appliance.out").read_bytes(),
        "anonymize stdout": anonymized.stdout.encode(),
        "anonymize stderr": anonymized.stderr.encode(),
    }
    for name, content in streams.items():
        found = [needle for needle in NEEDLES if needle in content.lower()]
        assert found == [], f"{name} holds planted PHI {found}"
    assert b"Warning" in streams["appliance log"] or b"warning" in streams["appliance log"].lower()
