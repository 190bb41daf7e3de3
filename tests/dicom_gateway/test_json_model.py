"""The DICOM JSON model built from raw elements equals pydicom's ``to_json_dict`` on every file
pydicom ships for its own tests (and on our synthetic CT), so WADO-RS metadata says the same."""

from __future__ import annotations

import warnings
from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_files
from pydicom.errors import InvalidDicomError

from dicom_gateway.dicomweb.json_model import to_json_dict
from testbed.synthetic import FakePatient, ct_series


def _pydicom_json(part10: bytes) -> dict | None:
    try:
        return dcmread(BytesIO(part10), stop_before_pixels=True).to_json_dict()
    except Exception:  # a file pydicom cannot put in JSON: ours must fail on it too
        return None


def _ours(part10: bytes) -> dict | None:
    try:
        return to_json_dict(dcmread(BytesIO(part10), stop_before_pixels=True))
    except Exception:
        return None


def test_the_same_json_as_pydicom_on_its_test_files() -> None:
    compared = fast = 0
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
    assert compared > 50 and fast > 20  # files of both encodings, most of them through the fast path


@pytest.mark.parametrize("seed", [1, 2])
def test_the_same_json_as_pydicom_on_synthetic_ct(seed: int) -> None:
    (dataset,) = ct_series(1, FakePatient("Doe^Jane", "PID-1", "19700101"), size=16, seed=seed)
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    assert _ours(buffer.getvalue()) == _pydicom_json(buffer.getvalue()) is not None
