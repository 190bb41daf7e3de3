"""Whether a read object is whole: pydicom reads a cut or garbled file without a word.

A file cut short leaves its last element shorter than its length says (pixel data, usually); a
DICM header followed by garbage parses into an element or two of nonsense with lengths far beyond
the file. Neither may be de-identified into an output that looks like success. Native pixel data
must also hold what its rows, columns, frames, samples and bits allocated say.
"""

from __future__ import annotations

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

_UNDEFINED = 0xFFFFFFFF


def incomplete(dataset: Dataset) -> str | None:
    """Why ``dataset`` (as ``dcmread`` returned it) is not a whole object; None if it is."""
    for raw in dataset._dict.values():  # the raw elements, before pydicom converts them
        if isinstance(raw, RawDataElement) and raw.value is not None and raw.length != _UNDEFINED:
            if len(raw.value) != raw.length:
                tag = f"({raw.tag.group:04X},{raw.tag.element:04X})"
                return f"cut short: element {tag} holds {len(raw.value)} of its {raw.length} bytes"
    if "SOPInstanceUID" not in dataset or "SOPClassUID" not in dataset:
        return "not a whole DICOM object (no SOP Class or SOP Instance UID)"
    return _short_pixels(dataset)


def _short_pixels(dataset: Dataset) -> str | None:
    if "PixelData" not in dataset or dataset.file_meta.get("TransferSyntaxUID") is None:
        return None
    if dataset.file_meta.TransferSyntaxUID.is_compressed:
        return None  # encapsulated: the codec finds a cut fragment when the pixels are read
    try:
        rows, columns = int(dataset.Rows), int(dataset.Columns)
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
        samples = int(dataset.get("SamplesPerPixel", 1) or 1)
        bits = int(dataset.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return "pixel data without a readable Rows, Columns or Bits Allocated"
    expected = (rows * columns * frames * samples * bits + 7) // 8
    held = len(dataset.PixelData)
    if held < expected:
        return f"pixel data holds {held} bytes; its rows x columns x frames say {expected}"
    return None
