"""STOW-RS (PS3.18 10.5): a ``multipart/related`` body of DICOM files, stored one by one through the
same checks and sink as C-STORE, answered with the standard's response.

The response holds a Referenced SOP Sequence (stored, or stored already with the same content) and
a Failed SOP Sequence with each failure's C-STORE status as its Failure Reason; HTTP 200 when all
were stored, 202 when some were, 409 when none was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from io import BytesIO

from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_file_meta_info

from dicom_gateway.errors import DicomwebRefused

_PART_TYPE = "application/dicom"


@dataclass
class StowOutcome:
    """What became of each part: (SOP Class, SOP Instance) stored, or failed with a status."""

    stored: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def http_status(self) -> int:
        if not self.failed:
            return 200
        return 202 if self.stored else 409

    def response(self) -> dict:
        body: dict = {}
        if self.stored:
            body["00081199"] = {
                "vr": "SQ",
                "Value": [
                    {"00081150": {"vr": "UI", "Value": [c]}, "00081155": {"vr": "UI", "Value": [i]}}
                    for c, i in self.stored
                ],
            }
        if self.failed:
            body["00081198"] = {
                "vr": "SQ",
                "Value": [
                    {
                        **({"00081150": {"vr": "UI", "Value": [c]}} if c else {}),
                        **({"00081155": {"vr": "UI", "Value": [i]}} if i else {}),
                        "00081197": {"vr": "US", "Value": [code]},
                    }
                    for c, i, code in self.failed
                ],
            }
        return body


def _boundary(content_type: str) -> bytes:
    found = re.search(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', content_type, re.IGNORECASE)
    if found is None:
        raise DicomwebRefused(400, "the multipart body's boundary is missing from Content-Type")
    return (found.group(1) or found.group(2)).encode()


def _part_type(headers: bytes) -> str:
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            return value.split(b";")[0].strip().decode("latin-1").lower()
    return ""


_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}


def _meta_end(content: bytes) -> int:
    """Where the group 0002 elements at the start of ``content`` end (Explicit VR Little Endian)."""
    offset = 0
    while content[offset : offset + 2] == b"\x02\x00" and offset + 8 <= len(content):
        if content[offset + 4 : offset + 6] in _LONG_VRS:
            offset += 12 + int.from_bytes(content[offset + 8 : offset + 12], "little")
        else:
            offset += 8 + int.from_bytes(content[offset + 6 : offset + 8], "little")
    return offset


def _as_part10(content: bytes) -> bytes:
    """A file sent without its 128-byte preamble and ``DICM``, its file meta without the group length
    (as pydicom writes a dataset made in memory, and so dicomweb-client sends it), made whole: the
    file meta rewritten as Part 10 has it, the dataset's bytes kept exactly as sent."""
    if content[128:132] == b"DICM" or content[:2] != b"\x02\x00":
        return content
    end = _meta_end(content)
    try:
        meta = FileMetaDataset(
            read_dataset(BytesIO(content[:end]), is_implicit_VR=False, is_little_endian=True)
        )
        out = DicomBytesIO()
        out.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(out, meta, enforce_standard=True)
    except Exception:  # not a file meta after all: left for the instance checks to refuse
        return content
    return out.getvalue() + content[end:]


def dicom_parts(content_type: str, body: bytes) -> list[bytes]:
    """The DICOM files in a ``multipart/related; type="application/dicom"`` body (RFC 2046 5.1)."""
    if not re.match(r"\s*multipart/related\b", content_type, re.IGNORECASE):
        raise DicomwebRefused(415, 'STOW-RS takes multipart/related; type="application/dicom"')
    delimiter = b"--" + _boundary(content_type)
    preamble, *sections = (b"\r\n" + body).split(b"\r\n" + delimiter)
    if not sections:
        raise DicomwebRefused(400, "the body holds no part delimited by the boundary of its Content-Type")
    parts = []
    for section in sections:
        if section.startswith(b"--"):  # the close delimiter
            break
        headers, separator, content = section.partition(b"\r\n\r\n")
        if not separator:
            raise DicomwebRefused(400, "a part of the multipart body has no header block")
        kind = _part_type(headers)
        if kind != _PART_TYPE:
            raise DicomwebRefused(415, f"a part of type {kind or 'unstated'}: only {_PART_TYPE} is taken")
        parts.append(_as_part10(content))
    if not parts:
        raise DicomwebRefused(400, "the body holds no DICOM part")
    return parts
