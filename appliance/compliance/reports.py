"""Run, sign, keep and audit compliance reports.

A report is signed with the appliance's audit signing key (the key auditors already hold to verify
the audit log's checkpoints) in a DSSE envelope, kept with its SHA-256, and recorded as an audit
event; each failed finding at or above the policy's alert severity is also a Security Alert
(110113), which the ATNA syslog forwarder ships to the SIEM. Reports run on demand (the CLI, the
compliance page) and, while the appliance runs, every ``compliance.interval_hours``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlmodel import select

from anonymizer.release import dsse
from appliance.compliance import checks, fingerprint
from appliance.compliance.findings import PAYLOAD_TYPE, ComplianceReport, Severity
from appliance.context import Appliance, report_signing_key
from appliance.db.tables import ComplianceReportRow, as_utc
from appliance.errors import NotFound
from appliance.runtime.periodic import NextPassIn
from audit.errors import AuditIntegrityError
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject
from audit.reader import read_entries

log = logging.getLogger(__name__)
_FIRST_PERIOD = timedelta(days=1)


def _readable_entries(app: Appliance, most: int | None = None) -> list[dict]:
    """The audit log's entries up to the first that does not decrypt (the verification check then
    fails, saying where): the other checks still report on what can be read."""
    directory = app.settings.path(app.settings.audit.directory)
    entries: list[dict] = []
    try:
        for entry in read_entries(directory, app.audit_key):
            entries.append(entry)
            if most is not None and len(entries) >= most:
                break
    except AuditIntegrityError:
        pass
    return entries


def latest(app: Appliance) -> ComplianceReportRow | None:
    with app.session() as session:
        return session.exec(select(ComplianceReportRow).order_by(ComplianceReportRow.id.desc())).first()  # type: ignore[union-attr]


def history(app: Appliance, limit: int = 30) -> list[ComplianceReportRow]:
    with app.session() as session:
        statement = select(ComplianceReportRow).order_by(ComplianceReportRow.id.desc()).limit(limit)  # type: ignore[union-attr]
        return list(session.exec(statement).all())


def one(app: Appliance, report_id: int | None = None) -> ComplianceReportRow:
    """A kept report by its number; the newest without one."""
    with app.session() as session:
        row = session.get(ComplianceReportRow, report_id) if report_id is not None else latest(app)
    if row is None:
        raise NotFound(
            f"no compliance report {report_id}" if report_id is not None else "no compliance report yet"
        )
    return row


def opened(app: Appliance, row: ComplianceReportRow) -> dict:
    """The report a kept envelope holds, its signature checked with the audit signing key's public
    half (the file auditors are given)."""
    public_key = load_pem_public_key(app.signing_public_key_path.read_bytes())
    return json.loads(dsse.verify(row.envelope, [public_key], PAYLOAD_TYPE))  # type: ignore[list-item]


def run(app: Appliance, trigger: str, since: datetime | None = None) -> ComplianceReportRow:
    """Check the appliance against its policy now; sign, keep and audit the report."""
    previous = latest(app)
    now = datetime.now(UTC)
    if since is None:
        since = as_utc(previous.created_at) if previous else now - _FIRST_PERIOD
    app.audit.flush()
    entries = _readable_entries(app)
    period = checks.Period(app, entries, now, since, previous.fingerprint if previous else None)
    findings = [check(period) for check in checks.CHECKS]
    current = fingerprint.fingerprint(app)
    changed = fingerprint.drift(previous.fingerprint, current) if previous else []
    findings.append(checks.configuration_drift(period, current, changed))
    report = ComplianceReport(
        appliance=app.settings.audit.origin,
        generated_at=now.isoformat(),
        since=since.isoformat(),
        trigger=trigger,
        policy=app.settings.compliance.model_dump(mode="json"),
        findings=tuple(findings),
        fingerprint=current,
    )
    envelope = dsse.sign(report.payload(), report_signing_key(app), PAYLOAD_TYPE)
    failed = report.failed
    row = ComplianceReportRow(
        created_at=now,
        since=since,
        trigger=trigger[:80],
        failed=len(failed),
        worst=max(f.severity for f in failed).name.lower() if failed else None,
        fingerprint=current,
        envelope=envelope,
        digest=hashlib.sha256(envelope).hexdigest(),
    )
    with app.session() as session:
        session.add(row)
        session.commit()
        session.refresh(row)
    _audit(app, row, report)
    return row


def _audit(app: Appliance, row: ComplianceReportRow, report: ComplianceReport) -> None:
    who = Participant(report.trigger, is_requestor=True)
    reference = ParticipantObject("compliance-report", str(row.id), {"sha256": row.digest})
    app.audit.emit(
        AuditEvent(
            event_id=EventID.APPLICATION_ACTIVITY,
            action=Action.EXECUTE,
            outcome=Outcome.SUCCESS if not row.failed else Outcome.MINOR_FAILURE,
            type_code="Compliance Report",
            participants=(who,),
            objects=(reference,),
            description=f"compliance report {row.id}: {len(report.findings)} checks, {row.failed} failed",
        )
    )
    threshold = Severity.named(app.settings.compliance.alert_severity)
    for finding in report.failed:
        if finding.severity >= threshold:
            app.audit.emit(
                AuditEvent(
                    event_id=EventID.SECURITY_ALERT,
                    action=Action.EXECUTE,
                    outcome=Outcome.SERIOUS_FAILURE,
                    type_code="Compliance Finding",
                    participants=(who,),
                    objects=(reference,),
                    description=f"{finding.check} ({finding.severity.name.lower()}): {finding.summary}",
                )
            )
    app.audit.flush()


def _since_setup(app: Appliance) -> datetime:
    """When the appliance began: its audit log's first entry."""
    first = _readable_entries(app, 1)
    return datetime.fromisoformat(first[0]["at"]) if first else datetime.now(UTC)


def scheduled(app: Appliance, stop: threading.Event | None = None) -> NextPassIn | None:
    """The schedule's pass: a report once the newest (or, before the first, the appliance's setup)
    is ``compliance.interval_hours`` old; a restart does not make one of its own."""
    hours = app.settings.compliance.interval_hours
    if not hours:
        return None
    previous = latest(app)
    last = as_utc(previous.created_at) if previous else _since_setup(app)
    remaining = timedelta(hours=hours) - (datetime.now(UTC) - last)
    if remaining > timedelta(0):
        return NextPassIn(remaining.total_seconds())
    row = run(app, "schedule")
    log.info("compliance report %d: %d findings failed", row.id, row.failed)
    return NextPassIn(hours * 3600)
