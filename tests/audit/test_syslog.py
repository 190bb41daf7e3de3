"""ATNA over syslog/TLS to a real rsyslogd: a receiver down for a while still gets every event once."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject
from audit.log import AuditLog
from audit.syslog import Receiver, SyslogForwarder
from dicom_gateway.tls import client_context
from testbed.dcmtk import storescu
from testbed.processes import ApplianceProcess, RsyslogProcess, wait_for
from testbed.synthetic import ct_series, write_series
from tests.support.certs import CertificateAuthority
from tests.support.environments import FAST

pytestmark = pytest.mark.slow
KEY = bytes(range(32))


def test_events_produced_while_receiver_is_down_arrive_once_as_audit_messages(tmp_path):
    ca = CertificateAuthority(tmp_path / "pki", "SIEM CA")
    server = ca.issue("siem", "localhost", server=True)
    client = ca.issue("appliance", "appliance.test")
    log = AuditLog(tmp_path / "log", KEY, Ed25519PrivateKey.generate(), "t", tmp_path / "w.jsonl", 1000, 60)
    for n in range(50):
        log.emit(
            AuditEvent(
                EventID.INSTANCES_TRANSFERRED,
                Action.CREATE,
                Outcome.SUCCESS,
                participants=(Participant("SCU", "127.0.0.1", is_requestor=True),),
                objects=(ParticipantObject("patient", f"P{n}"), ParticipantObject("study", f"1.2.3.{n}")),
                description=f"instances={n}",
            )
        )
    log.close()  # flushed, with a signed checkpoint in the witness file
    siem = RsyslogProcess(tmp_path / "siem", ca.issued.cert, server.cert, server.key)
    receiver = Receiver("localhost", siem.port, client_context(ca.issued.cert, client.cert, client.key))
    forwarder = SyslogForwarder(
        tmp_path / "log",
        KEY,
        tmp_path / "cursor.json",
        receiver,
        "appliance",
        "test-source",
        tmp_path / "w.jsonl",
    )

    with pytest.raises(OSError):  # receiver down: nothing is lost, the cursor does not move
        forwarder.pump()
    assert not (tmp_path / "cursor.json").exists()

    siem.start()
    try:
        assert forwarder.pump() == 50
        assert forwarder.pump() == 0  # nothing twice
        wait_for(lambda: len(siem.lines()) >= 51, 20, "rsyslog to write every message")
        forwarder.close()
    finally:
        siem.stop()
    lines = siem.lines()
    checkpoints = [line for line in lines if "AuditMessage" not in line]
    assert len(checkpoints) == 1 and checkpoints[0].startswith("\ufefft") and "\u2014 t " in checkpoints[0]
    lines = [line for line in lines if "AuditMessage" in line]
    assert len(lines) == 50
    seen = []
    for line in lines:
        message = ElementTree.fromstring(line.lstrip("\ufeff"))
        identification = message.find("EventIdentification")
        assert identification is not None and identification.get("EventOutcomeIndicator") == "0"
        assert identification.get("EventDateTime") and identification.get("EventActionCode") == "C"
        assert message.find("EventIdentification/EventID").get("csd-code") == "110104"
        participant = message.find("ActiveParticipant")
        assert participant.get("UserID") == "SCU" and participant.get("UserIsRequestor") == "true"
        assert message.find("AuditSourceIdentification").get("AuditSourceID") == "test-source"
        patient = message.find("ParticipantObjectIdentification")
        assert patient.get("ParticipantObjectTypeCode") == "1"
        seen.append(patient.get("ParticipantObjectID"))
    assert sorted(seen) == sorted(f"P{n}" for n in range(50))


def test_running_appliance_ships_its_audit_trail(home, tmp_path, patient):
    ca = CertificateAuthority(tmp_path / "pki", "SIEM CA")
    server = ca.issue("siem", "localhost", server=True)
    client = ca.issue("appliance", "appliance.test")
    siem = RsyslogProcess(tmp_path / "siem", ca.issued.cert, server.cert, server.key).start()
    env = {
        **FAST,
        "APPLIANCE_AUDIT__SYSLOG__ENABLED": "true",
        "APPLIANCE_AUDIT__SYSLOG__PORT": str(siem.port),
        "APPLIANCE_AUDIT__SYSLOG__CA_FILE": str(ca.issued.cert),
        "APPLIANCE_AUDIT__SYSLOG__CERT_FILE": str(client.cert),
        "APPLIANCE_AUDIT__SYSLOG__KEY_FILE": str(client.key),
        "APPLIANCE_AUDIT__SYSLOG__POLL_SECONDS": "0.2",
    }
    appliance = ApplianceProcess(home, tmp_path / "a.out", env).start()
    try:
        assert (
            storescu(appliance.dicom_port, write_series(tmp_path / "in", ct_series(2, patient))).returncode
            == 0
        )
        wait_for(
            lambda: any('csd-code="110104"' in line for line in siem.lines()), 20, "the transfer at the SIEM"
        )
    finally:
        appliance.stop()
        siem.stop()
    transfer = next(line for line in siem.lines() if 'csd-code="110104"' in line)
    assert f'ParticipantObjectID="{patient.patient_id}"' in transfer
