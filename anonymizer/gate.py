"""The PHI gate: the last check before an object leaves, independent of how it was cleaned.

The encoded output is read back and every element's value (file meta, nested items at any depth and
private elements included; pixel and overlay bitmaps excepted, which the pixel step and OCR cover) is
searched for every identifying value of the original header, in its normalised variants (any case,
any separators, many date formats). A hit blocks the object, and the reason names the attributes,
never the value.
"""

from __future__ import annotations

from io import BytesIO

from pydicom import dcmread
from pydicom.dataelem import DataElement

from anonymizer.identity import Identity, walk

_BULK_KEYWORDS = {"PixelData", "FloatPixelData", "DoubleFloatPixelData", "OverlayData"}


def _text(element: DataElement) -> str:
    value = element.value
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if element.VM > 1:
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


def _where(element: DataElement) -> str:
    tag = f"({element.tag.group:04X},{element.tag.element:04X})"
    return f"{tag} {element.keyword}" if element.keyword else tag


def phi_hits(encoded: bytes, identity: Identity) -> list[str]:
    """Where the encoded object still holds an identifying value: ``"<attribute> in <element>"``."""
    if identity.pattern() is None:
        return []
    dataset = dcmread(BytesIO(encoded), force=True)
    hits = []
    for element in [*dataset.file_meta, *walk(dataset)]:
        overlay_bits = (element.tag.group & 0xFF00) == 0x6000 and element.tag.element == 0x3000
        if element.VR == "SQ" or element.keyword in _BULK_KEYWORDS or overlay_bits:
            continue
        text, coded = _text(element), element.VR == "CS"
        pattern = identity.pattern(coded)
        if text and pattern is not None and pattern.search(text):
            hits.append(f"{' or '.join(identity.labels_in(text, coded))} in {_where(element)}")
    return hits
