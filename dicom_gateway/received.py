"""Turn the bytes of a C-STORE request into a checked :class:`ReceivedInstance`.

Only the header is interpreted; the encoded dataset is kept exactly as received. Every check that
fails raises :class:`RejectedInstance` with the status to return and an Error Comment that names
no patient data.
"""

from __future__ import annotations

import functools
import hashlib
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, DeflatedExplicitVRLittleEndian

from dicom_gateway import status
from dicom_gateway.errors import RejectedInstance

_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float and Double Float Pixel Data
_UID = re.compile(rb"[0-9.]{1,64}")
_SOP_INSTANCE, _SOP_CLASS, _MODALITY = 0x00080018, 0x00080016, 0x00080060
_STUDY, _SERIES = 0x0020000D, 0x0020000E
# what PatientIdentity.of reads: the character set and the patient's four values
_IDENTITY_TAGS = (0x00080005, 0x00100010, 0x00100020, 0x00100030, 0x00100021)


@dataclass(frozen=True)
class PatientIdentity:
    """The identifying values the index needs; handled as PHI (encrypted before storage)."""

    patient_id: str
    name: str
    birth_date: str
    issuer: str

    @classmethod
    def of(cls, dataset: Dataset) -> PatientIdentity:
        """The identifying values as ``dataset`` holds them (empty where absent or unreadable)."""
        return cls(
            patient_id=_text(dataset, "PatientID"),
            name=_text(dataset, "PatientName"),
            birth_date=_text(dataset, "PatientBirthDate"),
            issuer=_text(dataset, "IssuerOfPatientID"),
        )


@dataclass(frozen=True)
class ReceivedInstance:
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    modality: str
    transfer_syntax_uid: str
    patient: PatientIdentity
    calling_ae: str
    called_ae: str
    dataset_bytes: bytes
    pixel_offset: int | None = None  # where the pixel data begins in dataset_bytes, when it ends them

    def part10(self) -> bytes:
        """The instance as a DICOM Part 10 file: preamble, file meta, dataset as received."""
        return b"".join((self._file_meta, self.dataset_bytes))

    def part10_header_length(self) -> int | None:
        """Where the pixel data begins in :meth:`part10`'s bytes (None: not known to end them)."""
        return None if self.pixel_offset is None else len(self._file_meta) + self.pixel_offset

    @functools.cached_property
    def _file_meta(self) -> bytes:
        """The preamble and file meta information, made once per instance."""
        meta = b"".join(
            (
                _meta_element(0x0001, b"OB", b"\x00\x01"),
                _meta_element(0x0002, b"UI", _ui(self.sop_class_uid)),
                _meta_element(0x0003, b"UI", _ui(self.sop_instance_uid)),
                _meta_element(0x0010, b"UI", _ui(self.transfer_syntax_uid)),
                _meta_element(0x0012, b"UI", _ui(PYDICOM_IMPLEMENTATION_UID)),
                _meta_element(0x0016, b"AE", _padded(self.calling_ae.encode("ascii", "replace"))),
            )
        )
        group_length = _meta_element(0x0000, b"UL", struct.pack("<I", len(meta)))
        return b"".join((_PREAMBLE, group_length, meta))


_PREAMBLE = b"\x00" * 128 + b"DICM"


def _padded(value: bytes, pad: bytes = b" ") -> bytes:
    return value + pad if len(value) % 2 else value


def _ui(uid: str) -> bytes:
    return _padded(uid.encode("ascii"), b"\x00")


def _meta_element(element: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element of group 0002 (file meta is always encoded so)."""
    if vr == b"OB":
        return struct.pack("<HH2sHI", 0x0002, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def _check_lengths(dataset: Dataset) -> None:
    """Every element whole, and of even length (PS3.5 7.1.1: an odd length is an encoding error
    that downstream peers may not survive, so it is refused, not stored)."""
    for elem in dataset._dict.values():
        if isinstance(elem, RawDataElement):
            if elem.length != _UNDEFINED_LENGTH and elem.value is not None and len(elem.value) != elem.length:
                raise RejectedInstance(
                    status.CANNOT_UNDERSTAND_UNDECODABLE,
                    f"dataset truncated in element {elem.tag}: {len(elem.value)} of {elem.length} bytes",
                )
            if elem.length != _UNDEFINED_LENGTH and elem.length % 2:
                raise RejectedInstance(
                    status.CANNOT_UNDERSTAND_UNDECODABLE,
                    f"element {elem.tag} has an odd length ({elem.length})",
                )
        elif elem.VR == "SQ":
            for item in elem.value:
                _check_lengths(item)


@dataclass(frozen=True)
class Header:
    """A decoded dataset up to its top-level pixel data (values raw until read), that element's
    tag when it has one, and where it begins in the encoded dataset when it ends the dataset."""

    dataset: Dataset
    pixel_tag: int | None
    pixel_offset: int | None = None


def decode_header(raw: bytes, transfer_syntax: UID) -> Header:
    """Parse and completeness-check an encoded dataset.

    Parsing stops at a top-level pixel data element of defined length that ends the dataset
    exactly: its value (nearly all of an image's bytes) is neither read into a copy nor needed.
    Anything else (elements after the pixel data, encapsulated or truncated pixel data) is read
    whole and checked element by element."""
    data = raw
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        try:
            data = zlib.decompress(raw, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise RejectedInstance(
                status.CANNOT_UNDERSTAND_UNDECODABLE, f"deflated dataset does not inflate: {exc}"
            ) from exc
    pixels: list[tuple[int, int]] = []

    def ends_with_pixels(tag: int, vr: str | None, length: int) -> bool:
        if tag not in _PIXEL_TAGS or length == _UNDEFINED_LENGTH or length % 2:
            return False
        pixels.append((int(tag), length))
        return True

    header = _read(data, transfer_syntax, ends_with_pixels)
    if pixels:
        tag, length = pixels[-1]
        element_header = 8 if transfer_syntax.is_implicit_VR else 12  # pixel data VRs have 32-bit lengths
        if header.position + element_header + length == len(data):
            deflated = transfer_syntax == DeflatedExplicitVRLittleEndian  # offsets of the inflated bytes
            return Header(header.dataset, tag, None if deflated else header.position)
    whole = _read(data, transfer_syntax, None)
    if whole.position != len(data):
        raise RejectedInstance(
            status.CANNOT_UNDERSTAND_UNDECODABLE,
            f"dataset is truncated or has trailing bytes (parsed {whole.position} of {len(data)})",
        )
    found = next((tag for tag in _PIXEL_TAGS if tag in whole.dataset), None)
    return Header(whole.dataset, found)


@dataclass(frozen=True)
class _Read:
    dataset: Dataset
    position: int  # where reading stopped


_StopWhen = Callable[[int, str | None, int], bool]


def _read(data: bytes, transfer_syntax: UID, stop_when: _StopWhen | None) -> _Read:
    fp = BytesIO(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = read_dataset(
                fp,
                is_implicit_VR=transfer_syntax.is_implicit_VR,
                is_little_endian=transfer_syntax.is_little_endian,
                stop_when=stop_when,  # type: ignore[arg-type]
            )
            _check_lengths(dataset)
        except RejectedInstance:
            raise
        except Exception as exc:  # pydicom raises many types on garbage; all mean "undecodable"
            raise RejectedInstance(
                status.CANNOT_UNDERSTAND_UNDECODABLE,
                f"dataset cannot be decoded ({type(exc).__name__} at byte {fp.tell()})",
            ) from exc
    if any("End of file" in str(w.message) for w in caught):
        raise RejectedInstance(
            status.CANNOT_UNDERSTAND_UNDECODABLE,
            f"dataset is truncated or has trailing bytes (parsed {fp.tell()} of {len(data)})",
        )
    return _Read(dataset, fp.tell())


def _raw(dataset: Dataset, tag: int) -> bytes | None:
    """An element's value as encoded (None when absent); text VRs read the same in every syntax."""
    element = dataset.get_item(tag)
    if element is None:
        return None
    value = element.value
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")


def _uid(dataset: Dataset, tag: int, keyword: str) -> str:
    """A UID read from its encoded bytes (no value conversion: this runs for every instance)."""
    try:
        value = (_raw(dataset, tag) or b"").strip(b"\x00 ")
    except Exception as exc:
        raise RejectedInstance(
            status.CANNOT_UNDERSTAND_MISSING_UID, f"{keyword} cannot be decoded ({type(exc).__name__})"
        ) from exc
    if not value:
        raise RejectedInstance(status.CANNOT_UNDERSTAND_MISSING_UID, f"{keyword} is missing or empty")
    if not _UID.fullmatch(value):
        raise RejectedInstance(status.CANNOT_UNDERSTAND_MISSING_UID, f"{keyword} is not a valid UID")
    return value.decode("ascii")


def _text(dataset: Dataset, keyword: str) -> str:
    try:
        return str(dataset.get(keyword, "") or "")
    except Exception:
        return ""


@functools.lru_cache(maxsize=256)
def _is_image_storage(sop_class: str) -> bool:
    return "Image Storage" in UID(sop_class).name


class _Identities:
    """The patient identity of recently received headers, by the encoded values it is read from:
    every slice of a series carries the same bytes, so their conversion (character set included)
    is done once per patient rather than once per instance."""

    _MAX = 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[tuple[bytes | None, ...], PatientIdentity] = {}

    def of(self, dataset: Dataset) -> PatientIdentity:
        try:
            key = tuple(_raw(dataset, tag) for tag in _IDENTITY_TAGS)
        except Exception:
            return PatientIdentity.of(dataset)
        with self._lock:
            known = self._known.get(key)
        if known is None:
            known = PatientIdentity.of(dataset)
            with self._lock:
                if len(self._known) >= self._MAX:
                    self._known.clear()
                self._known[key] = known
        return known


_IDENTITIES = _Identities()


def parse_instance(
    raw: bytes,
    transfer_syntax: UID,
    context_sop_class: str,
    affected_sop_instance: str | None,
    calling_ae: str,
    called_ae: str,
) -> ReceivedInstance:
    header = decode_header(raw, transfer_syntax)
    dataset = header.dataset
    sop_instance = _uid(dataset, _SOP_INSTANCE, "SOPInstanceUID")
    sop_class = _uid(dataset, _SOP_CLASS, "SOPClassUID")
    if sop_class != context_sop_class:
        raise RejectedInstance(
            status.DATASET_DOES_NOT_MATCH_SOP_CLASS,
            f"SOP Class UID {sop_class} does not match the presentation context's {context_sop_class}",
        )
    if _is_image_storage(sop_class) and header.pixel_tag is None:
        raise RejectedInstance(
            status.DATASET_DOES_NOT_MATCH_SOP_CLASS, f"{UID(sop_class).name} object without pixel data"
        )
    if affected_sop_instance and affected_sop_instance != sop_instance:
        raise RejectedInstance(
            status.DATASET_DOES_NOT_MATCH_SOP_CLASS,
            "SOP Instance UID in the dataset differs from the request's Affected SOP Instance UID",
        )
    return ReceivedInstance(
        sop_class_uid=sop_class,
        sop_instance_uid=sop_instance,
        study_uid=_uid(dataset, _STUDY, "StudyInstanceUID"),
        series_uid=_uid(dataset, _SERIES, "SeriesInstanceUID"),
        modality=(_raw(dataset, _MODALITY) or b"").decode("ascii", "replace").strip("\x00 ")[:16],
        transfer_syntax_uid=str(transfer_syntax),
        patient=_IDENTITIES.of(dataset),
        calling_ae=calling_ae,
        called_ae=called_ae,
        dataset_bytes=raw,
        pixel_offset=header.pixel_offset,
    )


def dataset_offset(data: bytes) -> int:
    """Offset of the dataset in a Part 10 file, from File Meta Information Group Length."""
    if len(data) < 144 or data[128:132] != b"DICM":
        raise RejectedInstance(
            status.CANNOT_UNDERSTAND_UNDECODABLE, "not a DICOM Part 10 file (no DICM prefix)"
        )
    if data[132:136] != b"\x02\x00\x00\x00" or data[136:138] != b"UL":
        raise RejectedInstance(
            status.CANNOT_UNDERSTAND_UNDECODABLE, "file meta has no group length (0002,0000) first"
        )
    return 144 + int.from_bytes(data[140:144], "little")


def content_digest(part10: bytes) -> str:
    """SHA-256 of a Part 10 file's dataset as encoded (its file meta left out: who sent it, when)."""
    return hashlib.sha256(memoryview(part10)[dataset_offset(part10) :]).hexdigest()


def split_part10(data: bytes) -> tuple[Dataset, bytes]:
    """(file meta, dataset bytes exactly as encoded) of a DICOM Part 10 file."""
    start = dataset_offset(data)
    meta = read_dataset(BytesIO(data[132:start]), is_implicit_VR=False, is_little_endian=True)
    return meta, data[start:]


def instance_from_part10(data: bytes, calling_ae: str, called_ae: str) -> ReceivedInstance:
    """A checked instance from a DICOM file, as if it had arrived over the network."""
    meta, dataset_bytes = split_part10(data)
    syntax = UID(str(meta.get("TransferSyntaxUID", "")))
    if not syntax:
        raise RejectedInstance(status.CANNOT_UNDERSTAND_UNDECODABLE, "file meta has no Transfer Syntax UID")
    sop_class = str(meta.get("MediaStorageSOPClassUID", ""))
    return parse_instance(dataset_bytes, syntax, sop_class, None, calling_ae, called_ae)
