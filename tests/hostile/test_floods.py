"""Against a real ``appliance serve`` (its gateway in two processes): oversized PDUs and a flood
of rejected associations, each while an allowed sender stores a series, which must all be
acknowledged. Bounded: a few hundred connections, a few seconds each."""

from __future__ import annotations

import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE

from testbed.processes import ApplianceProcess
from testbed.synthetic import ct_series
from tests.support.environments import FAST
from tests.support.inspect import audit_events

pytestmark = pytest.mark.slow

TWO_PROCESSES = {**FAST, "APPLIANCE_DICOM__WORKERS": "2"}


def _store_series(port: int, count: int = 20) -> list[int]:
    ae = AE(ae_title="SCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="APPLIANCE")
    assert assoc.is_established, "the allowed sender was refused during the attack"
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in ct_series(count)]
    finally:
        assoc.release()


def _rss_mib(process: psutil.Process) -> float:
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def _claim_gigabytes(port: int, pdu_type: int, stream_mib: int) -> bool:
    """Send a PDU header claiming ~4 GiB, then stream zeros; True once the gateway cut us off."""
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.settimeout(10)
        try:
            connection.sendall(struct.pack(">BBL", pdu_type, 0, 0xFFFFFFF0))
            chunk = bytes(1024 * 1024)
            for _ in range(stream_mib):
                connection.sendall(chunk)
            return connection.recv(1) == b""
        except OSError:
            return True


def _oversized_data_pdu(port: int) -> bool:
    ae = AE(ae_title="SCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="APPLIANCE")
    assert assoc.is_established
    raw = assoc.dul.socket.socket
    try:
        raw.sendall(struct.pack(">BBL", 0x04, 0, 525_000) + bytes(525_000))
        raw.settimeout(10)
        cut = raw.recv(1) == b""
    except OSError:
        cut = True
    assoc.abort()
    return cut


def test_oversized_pdus_are_cut_on_their_headers_while_a_sender_stores(home, tmp_path):
    appliance = ApplianceProcess(home, tmp_path / "appliance.out", TWO_PROCESSES).start()
    try:
        assert appliance.process is not None
        process = psutil.Process(appliance.process.pid)
        before = _rss_mib(process)
        results: dict[str, object] = {}
        attack = threading.Thread(
            target=lambda: results.update(
                request=[_claim_gigabytes(appliance.dicom_port, 0x01, 64) for _ in range(4)],
                data=[_oversized_data_pdu(appliance.dicom_port) for _ in range(4)],
            )
        )
        attack.start()
        statuses = _store_series(appliance.dicom_port)
        attack.join(120)
        assert statuses == [0x0000] * 20
        assert results["request"] == [True] * 4 and results["data"] == [True] * 4
        assert _rss_mib(process) - before < 64  # 256 MiB streamed at claims of 4 GiB: none of it held
        assert appliance.readiness()["dicom"]["refused_connections"] == 8
    finally:
        appliance.stop()


def test_a_flood_of_rejected_associations_does_not_stop_an_allowed_sender(home, tmp_path):
    appliance = ApplianceProcess(home, tmp_path / "appliance.out", TWO_PROCESSES).start()

    def intruder(_: int) -> bool:
        ae = AE(ae_title="INTRUDER")
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", appliance.dicom_port, ae_title="APPLIANCE")
        return assoc.is_rejected

    try:
        with ThreadPoolExecutor(8) as pool:
            flood = pool.map(intruder, range(200))
            statuses = _store_series(appliance.dicom_port)
            rejected = list(flood)
        assert statuses == [0x0000] * 20
        assert all(rejected) and len(rejected) == 200
    finally:
        appliance.stop()
    alerts = [e for e in audit_events(home) if e["type"] == "Association Rejected"]
    assert len(alerts) == 200
