"""The gateway's own association layer (``dicom_gateway.association``, ``pdu``, ``dimse``): the
negotiation, the command sets as pydicom reads and writes them, and a raw peer that breaks the
protocol, falls silent, or sends its command and data set in odd fragments."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit

from audit.sink import MemorySink
from dicom_gateway import pdu
from dicom_gateway.association import negotiate
from dicom_gateway.dimse import C_ECHO_RQ, C_STORE_RQ, Command, decode_command, encode_response
from dicom_gateway.pdu import ProposedContext
from dicom_gateway.scp import GatewayConfig, StorageSCP
from testbed.synthetic import ct_series
from tests.support.gateway import AllowSCU, MemoryStore

VERIFICATION = "1.2.840.10008.1.1"


def test_negotiation_takes_our_preferred_syntax_among_those_proposed_and_says_why_others_are_refused():
    supported = {CTImageStorage: (ExplicitVRLittleEndian, ImplicitVRLittleEndian)}
    results = negotiate(
        [
            ProposedContext(
                1, CTImageStorage, (JPEGBaseline8Bit, ImplicitVRLittleEndian, ExplicitVRLittleEndian)
            ),  # noqa: E501
            ProposedContext(3, CTImageStorage, (JPEGBaseline8Bit,)),
            ProposedContext(5, "1.2.3.4", (ExplicitVRLittleEndian,)),
        ],
        supported,
    )
    assert results == [
        (1, pdu.ACCEPTED, ExplicitVRLittleEndian),
        (3, pdu.TRANSFER_SYNTAXES_NOT_SUPPORTED, JPEGBaseline8Bit),
        (5, pdu.ABSTRACT_SYNTAX_NOT_SUPPORTED, ExplicitVRLittleEndian),
    ]


def _implicit(dataset: Dataset) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, dataset)
    return buffer.getvalue()


def _command(field: int, message_id: int, with_dataset: bool, instance: str = "1.2.3.4") -> bytes:
    command = Dataset()
    command.AffectedSOPClassUID = CTImageStorage
    command.CommandField = field
    command.MessageID = message_id
    command.CommandDataSetType = 0x0000 if with_dataset else 0x0101
    if field == C_STORE_RQ:
        command.Priority = 0
        command.AffectedSOPInstanceUID = instance
    body = _implicit(command)
    return _implicit(Dataset()) + struct.pack("<HHLL", 0, 0, 4, len(body)) + body


def test_command_sets_are_read_and_written_as_pydicom_reads_and_writes_them():
    command = decode_command(_command(C_STORE_RQ, 7, True, "1.2.3.4.5"))
    assert command == Command(C_STORE_RQ, 7, CTImageStorage, "1.2.3.4.5", True)
    response = read_dataset(BytesIO(encode_response(command, 0xA700, "x" * 80)), True, True)
    assert response.CommandField == 0x8001 and response.MessageIDBeingRespondedTo == 7
    assert response.Status == 0xA700 and response.ErrorComment == "x" * 64  # cut to LO's 64
    assert response.AffectedSOPInstanceUID == "1.2.3.4.5" and response.AffectedSOPClassUID == CTImageStorage
    assert response.CommandDataSetType == 0x0101
    assert response.CommandGroupLength == len(encode_response(command, 0xA700, "x" * 80)) - 12
    echo = read_dataset(
        BytesIO(encode_response(decode_command(_command(C_ECHO_RQ, 9, False)), 0)), True, True
    )
    assert echo.CommandField == 0x8030 and echo.Status == 0 and "AffectedSOPInstanceUID" not in echo
    with pytest.raises(pdu.PduRefused):
        decode_command(b"\x00\x00\x00\x01\xff\xff\xff\x7f")  # a length beyond the command


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[StorageSCP, int, MemoryStore]]:
    config = GatewayConfig(
        ae_title="GATEWAY", host="127.0.0.1", port=0, max_associations=4, max_instance_bytes=10_000_000,
        min_free_bytes=0, free_space_path=tmp_path, network_timeout=1.0, max_pdu=16384,
    )  # fmt: skip
    store = MemoryStore()
    scp = StorageSCP(config, AllowSCU(), store, MemorySink())
    yield scp, scp.start(), store
    scp.stop()


def _item(item_type: int, value: bytes) -> bytes:
    return struct.pack(">BBH", item_type, 0, len(value)) + value


def _associate(port: int, contexts: list[tuple[int, str, str]]) -> socket.socket:
    """A raw peer that has negotiated ``contexts`` (id, abstract syntax, transfer syntax)."""
    items = _item(0x10, b"1.2.840.10008.3.1.1.1") + b"".join(
        _item(0x20, bytes((cid, 0, 0, 0)) + _item(0x30, abstract.encode()) + _item(0x40, syntax.encode()))
        for cid, abstract, syntax in contexts
    )
    items += _item(0x50, _item(0x51, struct.pack(">L", 16384)))
    body = b"\x00\x01\x00\x00" + b"GATEWAY".ljust(16) + b"SCU".ljust(16) + bytes(32) + items
    connection = socket.create_connection(("127.0.0.1", port))
    connection.settimeout(10)
    connection.sendall(struct.pack(">BBL", 0x01, 0, len(body)) + body)
    pdu_type, _ = _read_pdu(connection)
    assert pdu_type == pdu.ASSOCIATE_AC
    return connection


def _read_pdu(connection: socket.socket) -> tuple[int, bytes]:
    header = b""
    while len(header) < 6:
        chunk = connection.recv(6 - len(header))
        if not chunk:
            return 0, b""
        header += chunk
    pdu_type, _, length = struct.unpack(">BBL", header)
    body = b""
    while len(body) < length:
        body += connection.recv(length - len(body))
    return pdu_type, body


def _pdv(context_id: int, control: int, data: bytes) -> bytes:
    return struct.pack(">LBB", len(data) + 2, context_id, control) + data


def _p_data(*pdvs: bytes) -> bytes:
    body = b"".join(pdvs)
    return struct.pack(">BBL", 0x04, 0, len(body)) + body


def _closed(connection: socket.socket) -> bool:
    try:
        return connection.recv(1) == b""
    except OSError:
        return True


def test_a_command_and_data_set_in_many_small_fragments_are_stored_and_answered(gateway):
    _, port, store = gateway
    (dataset,) = ct_series(1)
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, dataset)
    data = buffer.getvalue()
    connection = _associate(port, [(1, CTImageStorage, ExplicitVRLittleEndian)])
    command = _command(C_STORE_RQ, 3, True, str(dataset.SOPInstanceUID))
    half = len(command) // 2
    connection.sendall(_p_data(_pdv(1, 0x01, command[:half])) + _p_data(_pdv(1, 0x03, command[half:])))
    pieces = [data[start : start + 1000] for start in range(0, len(data), 1000)]
    for index in range(0, len(pieces), 4):  # several PDVs in one PDU, the last fragment flagged
        group = pieces[index : index + 4]
        last = index + 4 >= len(pieces)
        connection.sendall(_p_data(*(_pdv(1, 0x02 if last and p is group[-1] else 0x00, p) for p in group)))
    pdu_type, body = _read_pdu(connection)
    assert pdu_type == pdu.P_DATA_TF
    response = read_dataset(BytesIO(body[6:]), True, True)
    assert response.Status == 0 and response.MessageIDBeingRespondedTo == 3
    assert [i.dataset_bytes for i in store.instances] == [data]
    connection.sendall(struct.pack(">BBL", 0x05, 0, 4) + bytes(4))  # A-RELEASE-RQ
    assert _read_pdu(connection)[0] == pdu.RELEASE_RP
    connection.close()


@pytest.mark.parametrize(
    "violation",
    [
        _p_data(_pdv(9, 0x03, b"")),  # a presentation context that was not accepted
        _p_data(struct.pack(">LBB", 4000, 1, 0x03)),  # a PDV longer than its PDU
        _p_data(_pdv(1, 0x02, b"data before any command")),
        _p_data(_pdv(1, 0x03, b"\x00\x00\x00\x01\xff\xff\xff\x7f")),  # a malformed command
        _p_data(_pdv(1, 0x03, _command(0x0020, 1, False))),  # C-FIND-RQ: not served here
        struct.pack(">BBL", 0x01, 0, 4) + bytes(4),  # a second A-ASSOCIATE-RQ
    ],
    ids=["unaccepted-context", "overrun", "data-first", "malformed-command", "c-find", "second-request"],
)
def test_a_protocol_violation_cuts_the_connection_and_is_counted(gateway, violation):
    scp, port, store = gateway
    connection = _associate(port, [(1, CTImageStorage, ExplicitVRLittleEndian)])
    connection.sendall(violation)
    assert _closed(connection)
    assert _eventually(lambda: scp.refused_connections.value == 1) and store.instances == []


def test_a_silent_association_is_aborted_after_the_network_timeout(gateway):
    scp, port, _ = gateway
    connection = _associate(port, [(1, VERIFICATION, ImplicitVRLittleEndian)])
    assert _read_pdu(connection)[0] == pdu.ABORT  # network_timeout is 1 s
    assert _closed(connection)
    assert _eventually(
        lambda: scp.gate.active.value == 0
    )  # its place under the association limit is free again


def _eventually(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return bool(predicate())
