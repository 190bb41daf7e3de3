"""The DICOM JSON model built from raw elements equals pydicom's ``to_json_dict`` on every file
pydicom ships for its own tests (and on our synthetic CT), so WADO-RS metadata says the same."""

from __future__ import annotations

import warnings
from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_files
from pydicom.errors import InvalidDicomError

from dicom_gateway.dicomweb.json_model import header_of, to_json_dict
from dicom_gateway.received import dataset_offset
from testbed.synthetic import FakePatient, ct_series


def _pydicom_json(part10: bytes) -> dict | None:
    try:
        return dcmread(BytesIO(part10), stop_before_pixels=True).to_json_dict()
    except Exception:  # a file pydicom cannot put in JSON: ours must fail on it too
        return None


def _ours(part10: bytes) -> dict | None:
    """As the metadata route makes it: a Part 10 file (as the appliance stores every object) read
    past its file meta with the transfer syntax the index gives; any other file by ``dcmread``."""
    try:
        syntax = dcmread(BytesIO(part10), stop_before_pixels=True).file_meta.get("TransferSyntaxUID")
        dataset_offset(part10)
    except Exception:
        syntax = None
    try:
        if syntax is None:
            return to_json_dict(dcmread(BytesIO(part10), stop_before_pixels=True))
        return to_json_dict(header_of(part10, syntax))
    except Exception:
        return None


def test_the_same_json_as_pydicom_on_its_test_files() -> None:
    compared = fast = skipping_meta = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in get_testdata_files("*.dcm"):
            data = open(name, "rb").read()
            try:
                dcmread(BytesIO(data), stop_before_pixels=True)
            except (InvalidDicomError, Exception):
                continue
            expected = _pydicom_json(data)
            assert _ours(data) == expected, name
            compared += 1
            fast += dcmread(BytesIO(data)).original_encoding == (False, True)
            skipping_meta += data[128:132] == b"DICM" and data[132:136] == b"\x02\x00\x00\x00"
    # files of both encodings, most through the fast path, most read past their file meta
    assert compared > 50 and fast > 20 and skipping_meta > 40


@pytest.mark.parametrize("seed", [1, 2])
def test_the_same_json_as_pydicom_on_synthetic_ct(seed: int) -> None:
    (dataset,) = ct_series(1, FakePatient("Doe^Jane", "PID-1", "19700101"), size=16, seed=seed)
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    assert _ours(buffer.getvalue()) == _pydicom_json(buffer.getvalue()) is not None
