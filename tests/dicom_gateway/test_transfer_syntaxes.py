"""Compressed and other transfer syntaxes are accepted and stored as received.

The files are pydicom's own test files (shipped inside the pydicom package).
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from testbed.dcmtk import storescu
from tests.support.inspect import stored_files

pytestmark = pytest.mark.slow

# pydicom test file -> the storescu option that proposes its transfer syntax
FILES = {
    "SC_rgb_jpeg_dcmtk.dcm": "-xy",  # JPEG baseline
    "JPGExtended.dcm": "-xx",  # JPEG extended
    "MR_small_jpeg_ls_lossless.dcm": "-xt",  # JPEG-LS lossless
    "MR_small_jp2klossless.dcm": "-xv",  # JPEG 2000 lossless
    "JPEG2000.dcm": "-xw",  # JPEG 2000
    "MR_small_RLE.dcm": "-xr",  # RLE lossless
    "image_dfl.dcm": "-xd",  # deflated explicit VR little endian
    "MR_small_bigendian.dcm": "-xb",  # explicit VR big endian
    "CT_small.dcm": "-xe",  # explicit VR little endian
}


def elements(dataset) -> dict:
    return {element.tag: element.value for element in dataset}


def with_fresh_uid(name: str, directory: Path) -> Path:
    """A copy of the test file under a new SOP Instance UID (several share one), same syntax."""
    dataset = dcmread(get_testdata_file(name, download=False))
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    path = directory / name
    dataset.save_as(path)
    return path


def test_each_transfer_syntax_is_stored_as_received(appliance, home, tmp_path):
    paths = []
    for name, option in FILES.items():
        path = with_fresh_uid(name, tmp_path)
        result = storescu(appliance.dicom_port, [path], options=[option, "-R"])
        assert result.returncode == 0, (name, result.stderr)
        paths.append(path)
    stored = stored_files(home)
    for path in paths:
        sent = dcmread(path)
        if "DataSetTrailingPadding" in sent:
            del sent.DataSetTrailingPadding  # storescu does not send it
        received = dcmread(BytesIO(stored[sent.SOPInstanceUID]))
        assert received.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID, path
        assert elements(received) == elements(sent), f"{path}: dataset differs after storage"
