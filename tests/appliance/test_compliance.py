"""``appliance compliance``: each check fails on the state it looks for, with its evidence; the report
is signed with the audit signing key, kept, audited, and its severe findings are Security Alerts;
the schedule makes one only when one is due."""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlmodel import select

from anonymizer.errors import ReleaseRejected
from anonymizer.release import dsse
from appliance.access import accounts
from appliance.compliance import reports
from appliance.compliance.findings import PAYLOAD_TYPE
from appliance.context import open_appliance
from appliance.db.tables import BreakGlass, Role, UserAccount, utcnow
from appliance.errors import AccessRefused
from appliance.runtime.periodic import NextPassIn
from testbed.processes import run_cli
from tests.support.inspect import audit_events

pytestmark = pytest.mark.slow


def _findings(output: str) -> dict[str, dict]:
    report = json.loads(output)["report"]
    return {f["check"]: f for f in report["findings"]}


def _plant_trouble(home: Path) -> None:
    """What a reviewer should be told of: a password guessed at, an account never enrolled, one
    unused for months, an emergency access nobody reviewed, a KEK older than the policy allows."""
    app = open_appliance(home)
    try:
        for name in ("never-enrolled", "long-gone", "guessed"):
            accounts.add_user(app, "test", name, Role.CLINICIAN)
        for _ in range(5):
            with pytest.raises(AccessRefused):
                accounts.sign_in(app, "guessed", "not the password", "000000", "198.51.100.7")
        with app.session() as session:
            users = {u.username: u for u in session.exec(select(UserAccount)).all()}
            users["never-enrolled"].created_at = utcnow() - timedelta(days=10)
            users["long-gone"].last_totp_step = int((time.time() - 100 * 86400) // 30)
            session.add_all(users.values())
            session.add(
                BreakGlass(
                    user_pk=users["long-gone"].id, study_uid="1.2.3", reason_code="emergency",
                    reason_text_enc=b"-", granted_at=utcnow() - timedelta(days=5), expires_at=utcnow(),
                )
            )  # fmt: skip
            session.commit()
        kek = next(app.settings.key_directory.glob("kek-*.key"))
        old = time.time() - 400 * 86400
        os.utime(kek, (old, old))
    finally:
        app.close()


def test_each_check_finds_what_it_looks_for_and_the_report_is_signed_and_audited(home: Path) -> None:
    first = run_cli(home, "compliance", "report", "--json", check=False)
    findings = _findings(first.stdout)
    assert first.returncode == 1  # the DICOM port listens on every address without TLS
    assert not findings["tls"]["passed"] and "DICOM on 0.0.0.0" in findings["tls"]["summary"]
    assert all(findings[c]["passed"] for c in findings if c != "tls"), findings
    assert findings["configuration-drift"]["summary"].startswith("the first report")

    _plant_trouble(home)
    run_cli(home, "sources", "add", "ct-2", "--ae", "CT2", "--host", "10.0.0.2")
    second = run_cli(home, "compliance", "report", "--json", check=False)
    findings = _findings(second.stdout)
    failed = {c for c, f in findings.items() if not f["passed"]}
    assert failed == {
        "tls", "accounts-without-mfa", "accounts-idle", "break-glass-unreviewed",
        "failed-login-bursts", "key-ages", "configuration-drift",
    }  # fmt: skip
    assert [u["username"] for u in findings["accounts-without-mfa"]["evidence"]["overdue"]] == [
        "never-enrolled"
    ]
    assert [u["username"] for u in findings["accounts-idle"]["evidence"]["idle"]] == ["long-gone"]
    (burst,) = findings["failed-login-bursts"]["evidence"]["bursts"]
    assert burst == {"username": "guessed", "failures": 5, "in_one_window": 5, "from": ["198.51.100.7"]}
    assert findings["break-glass-unreviewed"]["evidence"]["unreviewed"][0]["username"] == "long-gone"
    assert findings["key-ages"]["evidence"]["keys"][0]["age_days"] >= 400
    assert findings["configuration-drift"]["evidence"]["changed"] == ["accounts", "sources"]

    # signed with the audit signing key: a reviewer checks it with the public half they hold
    envelope = run_cli(home, "compliance", "signed").stdout.encode()
    public_key = load_pem_public_key((home / "audit-signing-key.pub").read_bytes())
    statement = json.loads(dsse.verify(envelope, [public_key], PAYLOAD_TYPE))  # type: ignore[list-item]
    assert statement == json.loads(second.stdout)["report"]
    parsed = json.loads(envelope)
    altered = base64.b64decode(parsed["payload"]).replace(b'"passed": false', b'"passed": true ')
    tampered = json.dumps({**parsed, "payload": base64.b64encode(altered).decode()}).encode()
    with pytest.raises(ReleaseRejected, match="signature does not verify"):
        dsse.verify(tampered, [public_key], PAYLOAD_TYPE)  # type: ignore[list-item]

    # each report is an audit event with its SHA-256; each failed high finding a Security Alert
    events = audit_events(home)
    kept = [e for e in events if e.get("type") == "Compliance Report"]
    assert [e["objects"][0]["detail"]["sha256"] for e in kept] == [
        json.loads(first.stdout)["sha256"], json.loads(second.stdout)["sha256"],
    ]  # fmt: skip
    alerts = [e["description"] for e in events if e.get("type") == "Compliance Finding"]
    assert sorted(a.split(" ")[0] for a in alerts) == ["break-glass-unreviewed", "failed-login-bursts"]
    assert all(e["event_id"] == "110113" for e in events if e.get("type") == "Compliance Finding")


def test_a_tampered_audit_log_fails_the_report(home: Path) -> None:
    entries = home / "audit" / "entries.log"
    data = bytearray(entries.read_bytes())
    data[-5] ^= 0xFF
    entries.write_bytes(bytes(data))
    found = run_cli(home, "compliance", "report", "--json", check=False)
    verified = _findings(found.stdout)["audit-log-verified"]
    assert found.returncode == 1 and not verified["passed"] and verified["severity"] == "high"


def test_the_schedule_reports_only_when_one_is_due(home: Path) -> None:
    app = open_appliance(home)
    try:
        waiting = reports.scheduled(app)  # a new appliance: its first report a day after its setup
        assert isinstance(waiting, NextPassIn) and 86000 < waiting.seconds <= 86400
        assert reports.latest(app) is None
        app.settings.compliance.interval_hours = 1e-6
        reports.scheduled(app)
        row = reports.latest(app)
        assert row is not None and row.trigger == "schedule"
        app.settings.compliance.interval_hours = 24
        assert isinstance(reports.scheduled(app), NextPassIn) and reports.latest(app).id == row.id  # type: ignore[union-attr]
        app.settings.compliance.interval_hours = 0
        assert reports.scheduled(app) is None
    finally:
        app.close()
