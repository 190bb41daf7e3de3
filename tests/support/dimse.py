"""A C-STORE SCU that sends dataset bytes exactly as given (malformed ones included)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID
from pynetdicom import AE, _config


@dataclass(frozen=True)
class StoreResult:
    status: int
    comment: str


def store_bytes(
    port: int,
    dataset_bytes: bytes,
    sop_class: str,
    sop_instance: str,
    syntax: str,
    scratch: Path,
    calling_ae: str = "SCU",
    called_ae: str = "APPLIANCE",
) -> StoreResult:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out = DicomBytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta)
    path = scratch / f"raw-{sop_instance}.dcm"
    path.write_bytes(out.getvalue() + dataset_bytes)

    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    assert assoc.is_established, "association for the raw store was not accepted"
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        response = assoc.send_c_store(path)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
        assoc.release()
    return StoreResult(int(response.Status), str(response.get("ErrorComment", "")))
