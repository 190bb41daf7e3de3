"""The gateway on its own: real associations on free ports against ``StorageSCP`` with an in-memory
sink, a failing sink, its limits and its TLS refusals; no appliance, database or store."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE

from audit.sink import MemorySink
from dicom_gateway import status, tls
from dicom_gateway.scp import GatewayConfig, StorageSCP
from testbed.synthetic import ct_series
from tests.support.certs import CertificateAuthority
from tests.support.gateway import AllowSCU, BrokenStore, FullStore, MemoryStore


def _config(tmp_path: Path, **overrides: object) -> GatewayConfig:
    settings: dict = dict(
        ae_title="GATEWAY", host="127.0.0.1", port=0, max_associations=4, max_instance_bytes=10_000_000,
        min_free_bytes=0, free_space_path=tmp_path, network_timeout=10.0,
    )  # fmt: skip
    settings.update(overrides)
    return GatewayConfig(**settings)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    started: list[StorageSCP] = []

    def start(sink, audit=None, **overrides) -> int:  # type: ignore[no-untyped-def]
        scp = StorageSCP(_config(tmp_path, **overrides), AllowSCU(), sink, audit or MemorySink())
        started.append(scp)
        return scp.start()

    yield start
    for scp in started:
        scp.stop()


def _send(port: int, calling_ae: str = "SCU", count: int = 1, tls_args=None):  # type: ignore[no-untyped-def]
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="GATEWAY", tls_args=tls_args)
    if not assoc.is_established:
        return None
    try:
        return [assoc.send_c_store(ds) for ds in ct_series(count)]
    finally:
        assoc.release()


def test_stored_instances_reach_the_sink_checked_and_named(serve):
    sink = MemoryStore()
    responses = _send(serve(sink), count=3)
    assert [int(r.Status) for r in responses] == [0x0000] * 3
    assert len(sink.instances) == 3
    first = sink.instances[0]
    assert (first.calling_ae, first.called_ae, first.sop_class_uid) == ("SCU", "GATEWAY", CTImageStorage)
    assert first.part10()[128:132] == b"DICM"


def test_a_sink_that_refuses_gives_its_status_and_comment(serve):
    [response] = _send(serve(FullStore()))
    assert int(response.Status) == status.OUT_OF_RESOURCES and response.ErrorComment == "the sink is full"


def test_a_sink_that_breaks_gives_a_processing_failure_without_its_message(serve):
    [response] = _send(serve(BrokenStore()))
    assert int(response.Status) == status.PROCESSING_FAILURE
    assert "DOE" not in response.ErrorComment and "RuntimeError" in response.ErrorComment


def test_an_instance_over_the_size_limit_is_refused_and_not_stored(serve):
    sink = MemoryStore()
    [response] = _send(serve(sink, max_instance_bytes=1000))
    assert int(response.Status) == status.OUT_OF_RESOURCES and "exceeds the limit" in response.ErrorComment
    assert sink.instances == []


def test_an_unknown_calling_ae_is_rejected_and_audited(serve):
    audit = MemorySink()
    assert _send(serve(MemoryStore(), audit), calling_ae="INTRUDER") is None
    assert any("not recognised" in (event.description or "") for event in audit.events)


def test_tls_refuses_a_plain_connection_and_a_client_without_a_certificate(serve, tmp_path):
    ca = CertificateAuthority(tmp_path / "ca", "test-ca")
    server = ca.issue("server", "localhost", server=True)
    context = tls.server_context(server.cert, server.key, ca.issued.cert, require_client_cert=True)
    audit = MemorySink()
    sink = MemoryStore()
    port = serve(sink, audit, tls_context=context, handshake_timeout=2.0)
    assert _send(port) is None  # plain DICOM on a TLS port
    anonymous = ssl.create_default_context(cafile=str(ca.issued.cert))
    anonymous.check_hostname = False
    assert _send(port, tls_args=(anonymous, "localhost")) is None  # no client certificate
    client = ca.issue("client", "SCU")
    trusted = tls.client_context(ca.issued.cert, client.cert, client.key)
    trusted.check_hostname = False
    responses = _send(port, tls_args=(trusted, "localhost"))
    assert responses is not None and int(responses[0].Status) == 0x0000 and len(sink.instances) == 1
    assert len(audit.events) >= 2  # each refusal is a security event
