"""The multi-process gateway: connections spread evenly, counted back to zero, all processes store."""

from __future__ import annotations

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from appliance.admin import peers
from appliance.context import open_appliance
from appliance.home import init_home
from appliance.pipeline.gateway import GatewayProcesses
from testbed.processes import wait_for
from testbed.synthetic import ct_series
from tests.support.inspect import stored_datasets

pytestmark = pytest.mark.slow


def test_connections_are_dispatched_evenly_and_released(tmp_path, monkeypatch):
    monkeypatch.setenv("APPLIANCE_DICOM__WORKERS", "3")
    monkeypatch.setenv("APPLIANCE_DICOM__HOST", "127.0.0.1")
    monkeypatch.setenv("APPLIANCE_DICOM__MIN_FREE_BYTES", "0")
    init_home(tmp_path / "home")
    app = open_appliance(tmp_path / "home")
    peers.add_source(app, "test", "scu", "SCU", "127.0.0.1", None)
    gateway = GatewayProcesses(app, 0)
    port = gateway.start()
    try:
        wait_for(lambda: gateway.running, 30, "gateway workers")
        ae = AE(ae_title="SCU")
        ae.add_requested_context(Verification)
        ae.add_requested_context(CTImageStorage)
        held = [ae.associate("127.0.0.1", port, ae_title="APPLIANCE") for _ in range(6)]
        assert all(a.is_established for a in held)
        assert gateway.loads == [2, 2, 2]
        for assoc, dataset in zip(held, ct_series(6), strict=True):
            assert assoc.send_c_store(dataset).Status == 0x0000
            assoc.release()
        wait_for(lambda: gateway.loads == [0, 0, 0], 10, "connections released")
    finally:
        gateway.stop()
    assert len(stored_datasets(tmp_path / "home")) == 6
