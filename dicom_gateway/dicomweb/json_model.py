"""The DICOM JSON model (PS3.18 F.2) of a dataset as pydicom's ``Dataset.to_json_dict()`` gives it,
built straight from the raw elements of the commonest value representations.

WADO-RS metadata turns every instance of a series into JSON before a viewer draws its first image;
pydicom first makes a full ``DataElement`` of each raw element, which was most of that time. Here an
explicit little endian element of a plain VR (numbers, UIDs, codes, dates, ASCII text) is decoded
as pydicom decodes it; anything else (person names, binary data, other encodings, private or
unknown VRs, values pydicom would refuse) goes through pydicom's own ``to_json_dict``. The tests
compare the output with pydicom's on pydicom's own test files. :func:`header_of` reads a stored
object's dataset for it without parsing its file meta again.
"""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from dicom_gateway.received import dataset_offset

_NUMBERS = {"US": "H", "UL": "L", "SS": "h", "SL": "l", "FL": "f", "FD": "d"}
_SPLIT_STRINGS = frozenset({"UI", "CS", "DA", "TM", "DT", "AS"})  # pydicom's multi_string
_TEXT = frozenset({"SH", "LO", "UC"})  # split, each value's trailing padding removed
_SINGLE_TEXT = frozenset({"ST", "LT", "UT"})  # one value, trailing padding removed
_ESCAPE = 0x1B  # ISO 2022 code extension: the bytes are not plain ASCII text


def _strings(vr: str, data: bytes) -> list[str] | None:
    if not data.isascii() or _ESCAPE in data:
        return None
    text = data.decode("ascii")
    if vr in _SPLIT_STRINGS:
        text = text.rstrip(" \x00") if vr != "UI" else text.rstrip("\x00 ")
        items = text.split("\\")
        return [] if items == [""] else items
    if vr == "AE":
        items = [s.strip() for s in text.split("\\")]
        return [] if items == [""] else items
    if vr in _TEXT:
        items = [s.rstrip("\x00 ") for s in text.split("\\")]
        return [] if items == [""] else items
    stripped = text.rstrip("\x00 ")
    return [stripped] if stripped else []


def _numbers(vr: str, data: bytes) -> list[int] | list[float] | None:
    items = data.decode("ascii", "replace").rstrip(" \x00").split("\\")
    if items == [""]:
        return []
    cleaned = [s.strip() for s in items]
    if vr == "IS":
        if not all(s.lstrip("+-").isdigit() for s in cleaned):
            return None
        return [int(s) for s in cleaned]
    try:
        return [float(s) for s in cleaned]
    except ValueError:
        return None


def _fast(raw: RawDataElement) -> dict[str, Any] | None:
    """The element's JSON, or None when pydicom must make it."""
    vr, data = raw.VR, raw.value
    if vr is None or data is None or raw.length == 0xFFFFFFFF or raw.tag.is_private:
        return None
    values: list | None
    if vr in _NUMBERS:
        size = struct.calcsize("<" + _NUMBERS[vr])
        if len(data) % size:
            return None
        values = list(struct.unpack(f"<{len(data) // size}{_NUMBERS[vr]}", data))
        if vr in ("FL", "FD"):
            values = [float(v) for v in values]
    elif vr in ("IS", "DS"):
        values = _numbers(vr, data)
    elif vr in _SPLIT_STRINGS or vr in _TEXT or vr in _SINGLE_TEXT or vr == "AE":
        values = _strings(vr, data)
    else:
        return None
    if values is None:
        return None
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def to_json_dict(dataset: Dataset, plain: bool | None = None) -> dict[str, Any]:
    """``dataset`` (and its sequences' items) in the DICOM JSON model, as pydicom writes it;
    ``plain``: read as explicit VR little endian (by default, as the dataset says it was read)."""
    if plain is None:
        plain = dataset.original_encoding == (False, True)
    out: dict[str, Any] = {}
    for tag, element in dataset._dict.items():
        key = f"{tag:08X}"
        found = _fast(element) if plain and isinstance(element, RawDataElement) else None
        if found is None:
            converted = dataset[tag]
            if converted.VR == "SQ":
                found = {"vr": "SQ", "Value": [to_json_dict(item, plain) for item in converted.value]}
            else:
                found = converted.to_json_dict(None, 1024)
        out[key] = found
    return out


_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})


def _before_pixels(tag: int, vr: str | None, length: int) -> bool:
    return tag in _PIXEL_TAGS


def header_of(part10: bytes, transfer_syntax: str) -> Dataset:
    """The dataset of a stored Part 10 object up to its pixel data. The file meta is skipped, not
    parsed (pydicom's parse of it cost as much as the dataset's): the index gives the transfer
    syntax. A deflated dataset goes through ``dcmread``, which inflates it."""
    syntax = UID(transfer_syntax)
    if syntax == DeflatedExplicitVRLittleEndian or not syntax.is_transfer_syntax:
        return dcmread(BytesIO(part10), stop_before_pixels=True)
    dataset = BytesIO(memoryview(part10)[dataset_offset(part10) :])
    return read_dataset(dataset, syntax.is_implicit_VR, syntax.is_little_endian, stop_when=_before_pixels)
