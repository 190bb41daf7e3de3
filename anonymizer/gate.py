"""The PHI gate: the last check before an object leaves, independent of how it was cleaned.

The encoded output itself is read, element by element (file meta, nested items at any depth and
private elements included; pixel and overlay bitmaps excepted, which the pixel step and OCR cover),
and every value is searched for every identifying value of the original header, in its normalised
variants (any case, any separators, many date formats). A hit blocks the object; the reason names
the attributes, never the value.

Explicit VR Little Endian encodings (what the engine writes, bar compressed pixel data) are walked
by the small parser below, straight from the bytes; anything else (deflate, ISO 2022 character sets,
an encoding the parser does not follow) is read back with pydicom instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from struct import unpack_from

from pydicom import dcmread
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement

from anonymizer.identity import Identity, walk

_BULK_KEYWORDS = {"PixelData", "FloatPixelData", "DoubleFloatPixelData", "OverlayData"}
_BULK_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_SIMPLE_CHARSETS = {b"", b"ISO_IR 6", b"ISO_IR 100", b"ISO_IR 192"}


class _NotSimple(Exception):
    """The encoding is not one the byte walker follows; pydicom reads it instead."""


def _is_bulk(tag: int) -> bool:
    return tag in _BULK_TAGS or ((tag >> 24) == 0x60 and (tag & 0xFFFF) == 0x3000)


def _skip_items(data: bytes, offset: int) -> int:
    """Past an undefined-length run of items (encapsulated pixel data) to its sequence delimiter."""
    while True:
        tag = (unpack_from("<H", data, offset)[0] << 16) | unpack_from("<H", data, offset + 2)[0]
        length = unpack_from("<I", data, offset + 4)[0]
        offset += 8
        if tag == _SEQUENCE_END:
            return offset
        if tag != _ITEM or length == _UNDEFINED:
            raise _NotSimple
        offset += length


def _elements(data: bytes, offset: int, end: int | None, out: list[tuple[int, bytes, bytes]]) -> int:
    """Append (tag, VR, value) of every element from ``offset`` up to ``end`` or an item delimiter."""
    while offset < (len(data) if end is None else end):
        group, number = unpack_from("<HH", data, offset)
        tag = (group << 16) | number
        if tag == _ITEM_END:
            return offset + 8
        vr = data[offset + 4 : offset + 6]
        if not vr.isalpha() or not vr.isupper():
            raise _NotSimple
        if vr in _LONG_VRS:
            length, start = unpack_from("<I", data, offset + 8)[0], offset + 12
        else:
            length, start = unpack_from("<H", data, offset + 6)[0], offset + 8
        if vr == b"SQ":
            offset = _sequence(data, start, length, out)
        elif length == _UNDEFINED:
            if not _is_bulk(tag):
                raise _NotSimple
            offset = _skip_items(data, start)
        else:
            if not _is_bulk(tag):
                out.append((tag, vr, data[start : start + length]))
            offset = start + length
    return offset


def _sequence(data: bytes, offset: int, length: int, out: list[tuple[int, bytes, bytes]]) -> int:
    end = None if length == _UNDEFINED else offset + length
    while end is None or offset < end:
        tag = (unpack_from("<H", data, offset)[0] << 16) | unpack_from("<H", data, offset + 2)[0]
        item_length = unpack_from("<I", data, offset + 4)[0]
        offset += 8
        if tag == _SEQUENCE_END:
            return offset
        if tag != _ITEM:
            raise _NotSimple
        if item_length == _UNDEFINED:
            offset = _elements(data, offset, None, out)
        else:
            _elements(data, offset, offset + item_length, out)
            offset += item_length
    return offset


def _walk_bytes(encoded: bytes) -> Iterator[tuple[int, str, bool]]:
    """(tag, text, is a CS) for each element of an Explicit VR Little Endian Part 10 file."""
    if encoded[128:132] != b"DICM":
        raise _NotSimple
    out: list[tuple[int, bytes, bytes]] = []
    _elements(encoded, 132, None, out)
    values = {tag: value for tag, _, value in out}
    if values.get(0x00020010, b"").rstrip(b"\x00 ") != b"1.2.840.10008.1.2.1":
        raise _NotSimple
    charset = values.get(0x00080005, b"").strip(b"\x00 ")
    if charset not in _SIMPLE_CHARSETS:
        raise _NotSimple
    encoding = "utf-8" if charset == b"ISO_IR 192" else "latin-1"
    for tag, vr, value in out:
        yield tag, value.decode(encoding, "replace"), vr == b"CS"


def _where(tag: int) -> str:
    keyword = "" if tag >> 16 & 1 else keyword_for_tag(tag)
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})" + (f" {keyword}" if keyword else "")


def _text(element: DataElement) -> str:
    value = element.value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if element.VM > 1:
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


def _walk_pydicom(encoded: bytes) -> Iterator[tuple[int, str, bool]]:
    dataset = dcmread(BytesIO(encoded), force=True)
    for element in [*dataset.file_meta, *walk(dataset)]:
        if element.VR == "SQ" or element.keyword in _BULK_KEYWORDS or _is_bulk(int(element.tag)):
            continue
        yield int(element.tag), _text(element), element.VR == "CS"


def phi_hits(encoded: bytes, identity: Identity) -> list[str]:
    """Where the encoded object still holds an identifying value: ``"<attribute> in <element>"``."""
    if identity.pattern() is None and not identity.uids:
        return []
    try:
        elements = list(_walk_bytes(encoded))
    except (_NotSimple, IndexError, ValueError):  # struct.error is a ValueError
        elements = list(_walk_pydicom(encoded))
    # One search over all values joined by NUL (no pattern crosses it), then element by element on a hit.
    for coded in (False, True):
        if identity.found_in("\x00".join(text for _, text, is_cs in elements if is_cs == coded), coded):
            break
    else:
        return []
    return [
        f"{' or '.join(identity.labels_in(text, coded))} in {_where(tag)}"
        for tag, text, coded in elements
        if text and identity.found_in(text, coded)
    ]
