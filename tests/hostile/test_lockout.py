"""Hostile peers against a real ``appliance serve`` over loopback: idle and trickling connections
from one address do not lock out an allowed sender on another; the refusals are counted, shown by
readiness, and raised as a Security Alert."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE

from appliance.admin.peers import add_source
from appliance.cli.common import actor
from appliance.context import open_appliance
from testbed.processes import ApplianceProcess
from testbed.synthetic import ct_series
from tests.support.environments import FAST
from tests.support.inspect import audit_events

pytestmark = pytest.mark.slow

ATTACK = {**FAST, "APPLIANCE_DICOM__ADMISSION__REQUEST_DEADLINE_SECONDS": "4"}


class Trickle(threading.Thread):
    """Sends an association request one byte at a time, each few seconds, until cut or stopped."""

    def __init__(self, port: int, every: float) -> None:
        super().__init__(daemon=True)
        self.connection = socket.create_connection(("127.0.0.1", port))
        self.every = every
        self.cut = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        request = struct.pack(">BBL", 0x01, 0, 300) + bytes(300)
        for byte in request:
            if self.stop.wait(self.every):
                return
            try:
                self.connection.sendall(bytes([byte]))
            except OSError:
                self.cut.set()
                return


def test_idle_and_trickling_connections_do_not_lock_out_an_allowed_sender(home, tmp_path):
    app = open_appliance(home)
    try:
        add_source(app, actor(), "second-scu", "LEGIT", "127.0.0.2", None)
    finally:
        app.close()
    appliance = ApplianceProcess(home, tmp_path / "appliance.out", ATTACK).start()
    idle: list[socket.socket] = []
    trickles: list[Trickle] = []
    try:
        for _ in range(50):
            idle.append(socket.create_connection(("127.0.0.1", appliance.dicom_port)))
        for _ in range(10):
            trickle = Trickle(appliance.dicom_port, every=1.5)
            trickle.start()
            trickles.append(trickle)
        time.sleep(0.5)  # the attack is in place

        ae = AE(ae_title="LEGIT")
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        assoc = ae.associate(
            "127.0.0.1", appliance.dicom_port, ae_title="APPLIANCE", bind_address=("127.0.0.2", 0)
        )
        assert assoc.is_established, "the allowed sender was locked out"
        responses = [assoc.send_c_store(ds) for ds in ct_series(20)]
        assoc.release()
        assert [int(r.Status) for r in responses] == [0x0000] * 20

        readiness = appliance.readiness()
        assert readiness["dicom"]["refused_connections"] >= 50  # 52 of 60 from 127.0.0.1 at once
        assert readiness["dicom"]["awaiting_request"] <= 8

        # the trickled requests admitted to the pool are cut at the 4 s deadline for the whole
        # request (one byte each 1.5 s would outlive any per-read timeout); the rest at once
        assert all(t.cut.wait(10) for t in trickles)
    finally:
        for trickle in trickles:
            trickle.stop.set()
            trickle.connection.close()
        for connection in idle:
            connection.close()
        appliance.stop()

    events = audit_events(home)
    alerts = [e for e in events if e["event"] == "Security Alert" and e["type"] == "Network Entry"]
    assert any(e["description"].startswith("repeated refused connections") for e in alerts)
    log = (tmp_path / "appliance.out").read_text()
    assert "connection from 127.0.0.1 refused" in log
