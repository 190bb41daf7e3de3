"""Hostile peers against the gateway alone (``StorageSCP`` on a free port, an in-memory sink):
PDUs larger than allowed are refused on their headers; a connection that never completes its
association request is cut at the deadline, however it trickles."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE

from audit.events import EventID
from audit.sink import MemorySink
from dicom_gateway.admission import Admission, AdmissionLimits
from dicom_gateway.scp import GatewayConfig, StorageSCP
from testbed.synthetic import ct_series
from tests.support.gateway import AllowSCU, MemoryStore

MAX_PDU = 262_144


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[StorageSCP, int, MemoryStore, MemorySink]]:
    limits = AdmissionLimits(pending_per_address=4, request_deadline_seconds=2.0, alert_after=3)
    config = GatewayConfig(
        ae_title="GATEWAY", host="127.0.0.1", port=0, max_associations=4, max_instance_bytes=10_000_000,
        min_free_bytes=0, free_space_path=tmp_path, network_timeout=10.0, max_pdu=MAX_PDU, admission=limits,
    )  # fmt: skip
    store, audit = MemoryStore(), MemorySink()
    scp = StorageSCP(config, AllowSCU(), store, audit)
    port = scp.start()
    yield scp, port, store, audit
    scp.stop()


def _closed_by_peer(connection: socket.socket, payload: bytes, within: float) -> bool:
    """Send ``payload`` in pieces; True once the gateway has closed the connection."""
    connection.settimeout(within)
    try:
        for start in range(0, len(payload), 65536):
            connection.sendall(payload[start : start + 65536])
        return connection.recv(1) == b""
    except OSError:
        return True


def _wait(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_an_association_request_claiming_gigabytes_is_refused_on_its_header(gateway):
    scp, port, _, _ = gateway
    with socket.create_connection(("127.0.0.1", port)) as connection:
        header = struct.pack(">BBL", 0x01, 0, 0xFFFFFFF0)
        assert _closed_by_peer(connection, header + bytes(32 * 1024 * 1024), within=10)
    assert _wait(lambda: scp.refused_connections.value == 1, 5)


def test_a_data_pdu_over_the_advertised_maximum_is_refused_before_it_is_read(gateway):
    scp, port, store, _ = gateway
    ae = AE(ae_title="SCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="GATEWAY")
    assert assoc.is_established and assoc.acceptor.maximum_length == MAX_PDU
    raw = assoc.dul.socket.socket
    oversized = struct.pack(">BBL", 0x04, 0, 525_000) + bytes(525_000)
    assert _closed_by_peer(raw, oversized, within=10)
    assert _wait(lambda: scp.refused_connections.value == 1, 5)
    assoc.abort()
    assert store.instances == []
    # a well-behaved sender still stores, its PDUs within the limit
    assoc = ae.associate("127.0.0.1", port, ae_title="GATEWAY")
    assert assoc.is_established
    (response,) = [assoc.send_c_store(ds) for ds in ct_series(1)]
    assoc.release()
    assert response.Status == 0x0000 and len(store.instances) == 1


def test_a_trickling_association_request_is_cut_at_the_deadline_and_repeats_raise_an_alert(gateway):
    scp, port, _, audit = gateway
    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    request = struct.pack(">BBL", 0x01, 0, 200) + bytes(200)
    started = time.monotonic()
    cut: set[int] = set()
    position = 0
    while len(cut) < len(connections) and time.monotonic() - started < 8:
        for index, connection in enumerate(connections):  # one byte each, every 0.3 s
            if index in cut:
                continue
            try:
                connection.sendall(request[position : position + 1])
            except OSError:
                cut.add(index)
        position += 1
        time.sleep(0.3)
    elapsed = time.monotonic() - started
    for connection in connections:
        connection.close()
    assert len(cut) == 3 and elapsed < 5  # the 2 s deadline is for the whole request, not per read
    assert _wait(lambda: scp.refused_connections.value == 3, 5)
    alerts = [e for e in audit.events if e.event_id is EventID.SECURITY_ALERT]
    assert len(alerts) == 1 and "repeated refused connections" in alerts[0].description


def test_connections_beyond_one_addresss_share_are_refused_at_once(gateway):
    scp, port, store, _ = gateway
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    try:
        extra = socket.create_connection(("127.0.0.1", port))
        assert _closed_by_peer(extra, b"", within=2)  # the fifth from this address: closed at once
        extra.close()
        assert _wait(lambda: scp.admission.pending == 4, 2)
        # another address is not affected by this one's share
        ae = AE(ae_title="SCU")
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", port, ae_title="GATEWAY", bind_address=("127.0.0.2", 0))
        assert assoc.is_established
        responses = [assoc.send_c_store(ds) for ds in ct_series(3)]
        assoc.release()
        assert [r.Status for r in responses] == [0, 0, 0]
    finally:
        for connection in idle:
            connection.close()


def test_a_request_already_whole_at_accept_is_judged_at_once_outside_the_pool():
    admission = Admission(AdmissionLimits(pending_per_address=1), lambda *_: None)
    request = struct.pack(">BBL", 0x01, 0, 68) + b"\x00\x01\x00\x00" + b"GATEWAY".ljust(16) + b"SCU".ljust(16)
    request += bytes(68 - 36)
    whole, waiting = socket.socketpair(), socket.socketpair()
    try:
        whole[0].sendall(request)
        waiting[0].sendall(request[:10])  # a request still arriving
        assert admission.at_once(whole[1]) == (True, None)
        assert admission.at_once(waiting[1]) == (False, None)  # this one goes to the pool
        assert whole[1].recv(len(request)) == request  # judged by a peek: left whole for pynetdicom
    finally:
        for pair in (whole, waiting):
            pair[0].close()
            pair[1].close()
    garbage = socket.socketpair()
    try:
        garbage[0].sendall(b"GET / HTTP/1.1\r\n")
        judged, refusal = admission.at_once(garbage[1])
        assert judged and refusal is not None and "not an A-ASSOCIATE-RQ" in refusal
    finally:
        garbage[0].close()
        garbage[1].close()


def test_a_burst_of_associations_from_one_sender_all_store_with_nothing_refused(gateway):
    scp, port, store, _ = gateway

    def echo_and_store(_: int) -> bool:
        ae = AE(ae_title="SCU")
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", port, ae_title="GATEWAY")
        if not assoc.is_established:
            return False
        (ds,) = ct_series(1)
        ok = assoc.send_c_store(ds).Status == 0x0000
        assoc.release()
        return ok

    with ThreadPoolExecutor(4) as pool:  # 4 at once, 12 in all
        assert all(pool.map(echo_and_store, range(12)))
    assert len(store.instances) == 12 and scp.refused_connections.value == 0
