"""The smaller defects: disk full is "out of resources"; an image without pixel data and an
odd-length element are refused; a key failure leaves no orphan file; garbage bytes and a
non-ASCII AE title on the port leave a trace."""

from __future__ import annotations

import errno
import socket
import struct
import time
from pathlib import Path

import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from appliance.context import open_appliance
from appliance.errors import KeyMaterialError
from appliance.security import crypto
from appliance.security.keys import Keyring, WrappedKey
from appliance.storage import store as store_module
from appliance.storage.store import EncryptedStore, new_object_id
from appliance.storage.writer import NewObject, ObjectWriter
from audit.sink import MemorySink
from dicom_gateway import status
from dicom_gateway.admission import AdmissionLimits
from dicom_gateway.errors import RejectedInstance
from dicom_gateway.received import PatientIdentity, ReceivedInstance, parse_instance
from dicom_gateway.scp import GatewayConfig, StorageSCP
from tests.support.gateway import AllowSCU, MemoryStore


def _element(group: int, element: int, vr: bytes, value: bytes, pad: bool = True) -> bytes:
    if pad and len(value) % 2:
        value += b"\x00" if vr == b"UI" else b" "
    return struct.pack("<HH", group, element) + vr + struct.pack("<H", len(value)) + value


def _header(sop_uid: str, extra: bytes = b"") -> bytes:
    return b"".join(
        [
            _element(0x0008, 0x0016, b"UI", CTImageStorage.encode()),
            _element(0x0008, 0x0018, b"UI", sop_uid.encode()),
            _element(0x0008, 0x0060, b"CS", b"CT"),
            _element(0x0010, 0x0020, b"LO", b"P-1 "),
            _element(0x0020, 0x000D, b"UI", b"1.2.3.4"),
            _element(0x0020, 0x000E, b"UI", b"1.2.3.5"),
            extra,
        ]
    )


def _parse(raw: bytes, sop_uid: str) -> ReceivedInstance:
    return parse_instance(raw, ExplicitVRLittleEndian, CTImageStorage, sop_uid, "SCU", "GATEWAY")


def test_an_image_without_pixel_data_and_an_odd_length_element_are_refused():
    uid = "1.2.3.6"
    with pytest.raises(RejectedInstance) as header_only:
        _parse(_header(uid), uid)
    assert header_only.value.status == status.DATASET_DOES_NOT_MATCH_SOP_CLASS
    assert header_only.value.comment == "CT Image Storage object without pixel data"
    pixels = struct.pack("<HH", 0x7FE0, 0x0010) + b"OW\x00\x00" + struct.pack("<L", 8) + bytes(8)
    assert _parse(_header(uid, pixels), uid).sop_instance_uid == uid  # with pixel data: accepted
    odd = _element(0x0008, 0x103E, b"LO", b"odd", pad=False)  # Series Description of 3 bytes
    with pytest.raises(RejectedInstance) as odd_length:
        _parse(_header(uid, odd + pixels), uid)
    assert odd_length.value.status == status.CANNOT_UNDERSTAND_UNDECODABLE
    assert "odd length" in odd_length.value.comment


def test_a_full_disk_is_out_of_resources_and_leaves_nothing(home, monkeypatch):
    def full(path: Path, data: bytes, mode: int = 0o600) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    app = open_appliance(home)
    writer = ObjectWriter(app)
    try:
        monkeypatch.setattr(store_module, "write_durably", full)
        instance = ReceivedInstance(
            CTImageStorage, generate_uid(), generate_uid(), generate_uid(), "CT", ExplicitVRLittleEndian,
            PatientIdentity("P-1", "", "", ""), "SCU", "APPLIANCE", b"\x08\x00\x60\x00CS\x02\x00CT",
        )  # fmt: skip
        with pytest.raises(RejectedInstance) as refused:
            writer.write(NewObject.received(instance))
        assert refused.value.status == status.OUT_OF_RESOURCES
        assert list(app.store.object_ids()) == []
    finally:
        writer.close()
        app.close()


class FailingKeyring(Keyring):
    def wrap(self, data_key: bytes, purpose: str) -> WrappedKey:
        raise KeyMaterialError("the active KEK cannot be read")


def test_a_key_failure_leaves_no_unreadable_object(tmp_path):
    store = EncryptedStore(tmp_path / "store", FailingKeyring({"k1": crypto.new_key()}, "k1"))
    store.prepare()
    with pytest.raises(KeyMaterialError):
        store.put(new_object_id(), b"an instance")
    assert list(store.object_ids()) == []


def test_garbage_bytes_and_a_non_ascii_ae_title_are_counted_and_logged(tmp_path, caplog):
    config = GatewayConfig(
        ae_title="GATEWAY", host="127.0.0.1", port=0, max_associations=4, max_instance_bytes=10_000_000,
        min_free_bytes=0, free_space_path=tmp_path, network_timeout=10.0,
        admission=AdmissionLimits(request_deadline_seconds=2.0),
    )  # fmt: skip
    scp = StorageSCP(config, AllowSCU(), MemoryStore(), MemorySink())
    port = scp.start()
    try:
        with socket.create_connection(("127.0.0.1", port)) as garbage:
            garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert garbage.recv(1) == b""
        request = struct.pack(">BBL", 0x01, 0, 68) + b"\x00\x01\x00\x00" + "GATEWAYé".encode().ljust(16)
        request += b"SCU".ljust(16) + bytes(32)
        with socket.create_connection(("127.0.0.1", port)) as foreign:
            foreign.sendall(request)
            assert foreign.recv(1) == b""
        deadline = time.monotonic() + 5
        while scp.refused_connections.value < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scp.refused_connections.value == 2
        reasons = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert any("not an A-ASSOCIATE-RQ" in r for r in reasons)
        assert any("not printable ASCII" in r for r in reasons)
    finally:
        scp.stop()
