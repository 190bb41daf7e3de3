"""Datasets as the appliance meets them: encoded to Part 10 and read back, headers first."""

from __future__ import annotations

from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset


def encoded(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def read_back(datasets: list[Dataset]) -> list[Dataset]:
    """Encode and decode, as the appliance reads what it stored."""
    return [dcmread(BytesIO(encoded(ds))) for ds in datasets]


class HeadersFirst:
    """The datasets as headers only, with the whole objects to load by header, counting loads
    (a :class:`models.pipeline.SeriesSource` held in memory)."""

    def __init__(self, datasets: list[Dataset]) -> None:
        self.encoded = {ds.SOPInstanceUID: encoded(ds) for ds in datasets}
        self.headers = [dcmread(BytesIO(data), stop_before_pixels=True) for data in self.encoded.values()]
        self.loads: list[str] = []

    def whole(self, header: Dataset) -> Dataset:
        self.loads.append(header.SOPInstanceUID)
        return dcmread(BytesIO(self.encoded[header.SOPInstanceUID]))
