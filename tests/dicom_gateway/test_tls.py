"""DICOM TLS with certificates made here: mutual TLS accepted; every refusal recorded."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from testbed.dcmtk import echoscu, storescu
from testbed.processes import ApplianceProcess, run_cli
from testbed.synthetic import ct_series, write_series
from tests.support.certs import CertificateAuthority
from tests.support.environments import FAST
from tests.support.inspect import audit_events

pytestmark = pytest.mark.slow


@pytest.fixture
def pki(tmp_path: Path) -> dict:
    ca = CertificateAuthority(tmp_path / "pki", "Test Hospital CA")
    rogue = CertificateAuthority(tmp_path / "rogue", "Rogue CA")
    return {
        "ca": ca.issued.cert,
        "server": ca.issue("server", "appliance.test", server=True),
        "scu": ca.issue("scu", "SCU"),
        "other": ca.issue("other", "OTHERAE"),
        "rogue_scu": rogue.issue("rogue-scu", "SCU"),
    }


@pytest.fixture
def tls_appliance(home: Path, tmp_path: Path, pki: dict):
    run_cli(home, "sources", "add", "other", "--ae", "OTHERAE", "--host", "127.0.0.1")
    env = {
        **FAST,
        "APPLIANCE_DICOM__TLS__ENABLED": "true",
        "APPLIANCE_DICOM__TLS__CERT_FILE": str(pki["server"].cert),
        "APPLIANCE_DICOM__TLS__KEY_FILE": str(pki["server"].key),
        "APPLIANCE_DICOM__TLS__CA_FILE": str(pki["ca"]),
        "APPLIANCE_DICOM__TLS__HANDSHAKE_TIMEOUT_SECONDS": "3",
    }
    process = ApplianceProcess(home, tmp_path / "a.out", env).start()
    yield process
    process.stop()


def client_tls(issued, ca: Path) -> list[str]:
    return ["+tls", str(issued.key), str(issued.cert), "+cf", str(ca)]


def alerts(home: Path) -> list[dict]:
    """Security alerts about connections (init's trust of the demo model publisher is one too)."""
    return [e for e in audit_events(home) if e["event_id"] == "110113" and e["type"] != "Model Registry"]


def tls11_handshake(port: int) -> int:
    """0 if a TLS 1.1 handshake completes, 1 if it is refused."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.warns(DeprecationWarning):
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw):
                return 0
        except (ssl.SSLError, OSError):
            return 1


def test_mutual_tls_is_accepted_and_stores(tls_appliance, home, pki, tmp_path, patient):
    files = write_series(tmp_path / "in", ct_series(3, patient))
    assert echoscu(tls_appliance.dicom_port, "SCU", options=client_tls(pki["scu"], pki["ca"])) == 0
    assert (
        storescu(tls_appliance.dicom_port, files, options=client_tls(pki["scu"], pki["ca"])).returncode == 0
    )
    assert alerts(home) == []
    accepted = [e for e in audit_events(home) if e["type"] == "Association Accepted"]
    assert accepted and accepted[-1]["description"] == "tls=True"


def test_each_refusal_is_recorded_as_a_security_event(tls_appliance, home, pki):
    port = tls_appliance.dicom_port
    cases = [
        ("no client certificate", lambda: echoscu(port, "SCU", options=["+tla", "+cf", str(pki["ca"])])),
        (
            "client certificate not trusted",
            lambda: echoscu(port, "SCU", options=client_tls(pki["rogue_scu"], pki["ca"])),
        ),
        ("not a TLS handshake", lambda: echoscu(port, "SCU", options=[])),
        ("protocol version not allowed", lambda: tls11_handshake(port)),
        (
            "TLS client certificate not bound",
            lambda: echoscu(port, "OTHERAE", options=client_tls(pki["scu"], pki["ca"])),
        ),
    ]
    for expected, attempt in cases:
        before = tls_appliance.readiness()["security_events"]
        result = attempt()
        assert result != 0, f"{expected}: the peer was not refused"
        assert tls_appliance.readiness()["security_events"] == before + 1, expected
        assert expected in alerts(home)[-1]["description"], (expected, alerts(home)[-1])
    # the right certificate for that AE still works: the refusals did not break the server
    assert echoscu(port, "OTHERAE", options=client_tls(pki["other"], pki["ca"])) == 0
