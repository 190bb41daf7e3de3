"""The checks of a compliance report, each against the written policy, each with its evidence.

Every check reads what an auditor could read themselves (the audit log, the accounts, the keys'
files, the settings); none reads patient data, and no finding names a patient or a study.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import select

from appliance.admin.audit_reading import verification
from appliance.compliance.findings import Finding, Severity
from appliance.config import ComplianceSettings
from appliance.context import SIGNING_PUBLIC_KEY, Appliance
from appliance.db.tables import BreakGlass, ReleaseRequest, RequestState, UserAccount, as_utc
from appliance.security.keys import DirectoryKeySource, key_source
from appliance.security.rotation import keys_in_use
from audit.events import EventID, Outcome
from audit.log import CHECKPOINTS


@dataclass(frozen=True)
class Period:
    """What a report looks at: the whole audit log (decrypted), the time now and since when."""

    app: Appliance
    entries: list[dict[str, Any]]
    now: datetime
    since: datetime
    previous_fingerprint: dict[str, str] | None

    @property
    def policy(self) -> ComplianceSettings:
        return self.app.settings.compliance

    def recent(self, event: EventID) -> list[dict[str, Any]]:
        code = event.value[0]
        return [e for e in self.entries if e["event_id"] == code and _at(e) >= self.since]


def _at(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["at"])


def _modified(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _days(delta: timedelta) -> float:
    return round(delta.total_seconds() / 86400, 1)


def audit_log_verified(period: Period) -> Finding:
    found = verification(period.app)
    evidence = {"entries": found.entries, "checkpoints": found.checkpoints, "witnessed": found.witnessed}
    return Finding(
        "audit-log-verified",
        "The audit log verifies: Merkle tree, signed checkpoints, witness",
        Severity.HIGH,
        found.verified,
        f"verified, {found.entries} entries, root {found.root}" if found.verified else f"{found.failure}",
        {**evidence, "root": found.root, "failure": found.failure},
    )


def checkpoint_age(period: Period) -> Finding:
    directory = period.app.settings.path(period.app.settings.audit.directory) / CHECKPOINTS
    notes = sorted(directory.glob("*.note"))
    covered = int(notes[-1].stem) if notes else 0
    uncovered = period.entries[covered:]
    limit = timedelta(minutes=period.policy.checkpoint_max_age_minutes)
    late = [e for e in uncovered if period.now - _at(e) > limit]
    evidence = {
        "checkpoint_size": covered,
        "checkpoint_written": _modified(notes[-1]).isoformat() if notes else None,
        "entries": len(period.entries),
        "oldest_uncovered": uncovered[0]["at"] if uncovered else None,
    }
    summary = (
        f"{len(late)} entries older than {limit} are not covered by a signed checkpoint"
        if late
        else f"every entry older than {limit} is covered (newest checkpoint: {covered} entries)"
    )
    return Finding(
        "audit-checkpoint-age", "Signed checkpoints are recent", Severity.MEDIUM, not late, summary, evidence
    )


def _accounts(app: Appliance) -> list[UserAccount]:
    with app.session() as session:
        return list(session.exec(select(UserAccount).where(UserAccount.disabled == False)).all())  # noqa: E712


def accounts_enrolled(period: Period) -> Finding:
    """Every account signs in with a one-time code; one that never enrolled it has no second factor yet."""
    limit = timedelta(days=period.policy.enrolment_days)
    pending = [u for u in _accounts(period.app) if u.last_totp_step == 0]
    overdue = [u for u in pending if period.now - as_utc(u.created_at) > limit]
    return Finding(
        "accounts-without-mfa",
        "Every account has enrolled its one-time code",
        Severity.MEDIUM,
        not overdue,
        f"{len(overdue)} accounts not enrolled after {limit.days} days; "
        f"{len(pending) - len(overdue)} still within them",
        {
            "overdue": [
                {"username": u.username, "role": u.role.value, "created": u.created_at} for u in overdue
            ],
            "pending": [u.username for u in pending if u not in overdue],
        },
    )


def accounts_idle(period: Period) -> Finding:
    limit = timedelta(days=period.policy.account_idle_days)
    idle = []
    for user in _accounts(period.app):
        if user.last_totp_step:  # the time step of the last code used: the last sign-in
            last = datetime.fromtimestamp(user.last_totp_step * 30, UTC)
            if period.now - last > limit:
                idle.append({"username": user.username, "role": user.role.value, "last_used": last})
    return Finding(
        "accounts-idle",
        f"No enabled account unused for {limit.days} days",
        Severity.LOW,
        not idle,
        f"{len(idle)} enabled accounts unused for more than {limit.days} days: disable them",
        {"idle": idle},
    )


def break_glass_reviewed(period: Period) -> Finding:
    limit = timedelta(days=period.policy.break_glass_review_days)
    with period.app.session() as session:
        grants = session.exec(select(BreakGlass).where(BreakGlass.reviewed_at == None)).all()  # noqa: E711
        users = {u.id: u.username for u in session.exec(select(UserAccount)).all()}
    overdue = [g for g in grants if period.now - as_utc(g.granted_at) > limit]
    return Finding(
        "break-glass-unreviewed",
        f"Every emergency access is reviewed within {limit.days} days",
        Severity.HIGH,
        not overdue,
        f"{len(overdue)} emergency accesses overdue for review, {len(grants) - len(overdue)} awaiting it",
        {
            "unreviewed": [
                {
                    "grant": g.id,
                    "username": users.get(g.user_pk, "?"),
                    "granted": g.granted_at,
                    "reason": g.reason_code,
                }
                for g in grants
            ]
        },
    )


def failed_login_bursts(period: Period) -> Finding:
    """Failed sign-ins of one name, ``failed_login_burst`` of them within the window: guessing."""
    window = timedelta(minutes=period.policy.failed_login_window_minutes)
    failures: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in period.recent(EventID.USER_AUTHENTICATION):
        if entry["outcome"] != Outcome.SUCCESS and entry.get("type") == "Login":
            for person in entry["participants"]:
                failures[person["user_id"]].append(entry)
    bursts = []
    for username, entries in failures.items():
        times = [_at(e) for e in entries]
        most = max(sum(1 for t in times if start <= t < start + window) for start in times)
        if most >= period.policy.failed_login_burst:
            hosts = sorted({p.get("host") or "" for e in entries for p in e["participants"]})
            bursts.append(
                {"username": username, "failures": len(entries), "in_one_window": most, "from": hosts}
            )
    return Finding(
        "failed-login-bursts",
        f"No burst of {period.policy.failed_login_burst} failed sign-ins within {window}",
        Severity.HIGH,
        not bursts,
        f"{len(bursts)} names had bursts of failed sign-ins" if bursts else "no burst of failed sign-ins",
        {"bursts": bursts, "failed_sign_ins": sum(len(v) for v in failures.values())},
    )


def exports(period: Period) -> Finding:
    """Every research export since, who ran it and whether it went out; and the researchers'
    requests decided since, who asked and who approved or refused them."""
    rows = [
        {
            "at": e["at"],
            "by": " ".join(p["user_id"] for p in e["participants"] if p.get("is_requestor")),
            "to": " ".join(p["user_id"] for p in e["participants"] if not p.get("is_requestor")),
            "outcome": e["outcome"],
            "what": e["description"],
        }
        for e in period.recent(EventID.EXPORT)
    ]
    with period.app.session() as session:
        decided = session.exec(
            select(ReleaseRequest).where(ReleaseRequest.decided_at >= period.since)  # type: ignore[operator]
        ).all()
    requests = [
        {"request": r.id, "dataset": r.name, "asked_by": r.requested_by, "decided_by": r.decided_by,
         "state": r.state.value, "version": r.version}
        for r in decided
    ]  # fmt: skip
    approved = sum(r.decided_by is not None and r.state != RequestState.REFUSED for r in decided)
    return Finding(
        "exports",
        "Exports of de-identified data, who made them and who approved them",
        Severity.INFO,
        True,
        f"{len(rows)} exports ({sum(r['outcome'] != 0 for r in rows)} refused or failed); "
        f"{len(requests)} release requests decided ({approved} approved)",
        {"exports": rows, "requests": requests},
    )


def key_ages(period: Period) -> Finding:
    app, limit = period.app, timedelta(days=period.policy.key_max_age_days)
    keys: list[dict[str, Any]] = []
    source = key_source(app.settings)
    active = app.keyring.active_id
    if isinstance(source, DirectoryKeySource):
        keys.append({"key": f"KEK {active}", "created": _modified(source.directory / f"kek-{active}.key")})
    signing_key = app.settings.home / SIGNING_PUBLIC_KEY
    if signing_key.is_file():
        keys.append({"key": "audit signing key", "created": _modified(signing_key)})
    old = [k for k in keys if period.now - k["created"] > limit]
    stale_wraps = {kid: n for kid, n in keys_in_use(app).items() if kid != active}
    for key in keys:
        key["age_days"] = _days(period.now - key["created"])
    problems = [f"{k['key']} is {k['age_days']} days old" for k in old]
    problems += [f"{n} keys still wrapped by the old KEK {kid}" for kid, n in stale_wraps.items()]
    return Finding(
        "key-ages",
        f"Keys rotated within {limit.days} days, and a rotation finished",
        Severity.MEDIUM,
        not problems,
        "; ".join(problems) or "every key is within the rotation period",
        {
            "keys": keys,
            "wrapped_by_old_keks": stale_wraps,
            "kek_source": app.settings.keys.source,
        },
    )


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def tls_settings(period: Period) -> Finding:
    settings = period.app.settings
    dicom, http, syslog = settings.dicom, settings.http, settings.audit.syslog
    problems = []
    if not dicom.tls.enabled and not _loopback(dicom.host):
        problems.append(f"DICOM on {dicom.host}:{dicom.port} without TLS")
    if dicom.tls.enabled and not dicom.tls.require_client_cert:
        problems.append("DICOM TLS does not require client certificates")
    if not http.tls_certificate and not _loopback(http.host):
        problems.append(f"HTTP on {http.host} without TLS (behind a TLS proxy: allow_plain_http)")
    if syslog.enabled and syslog.ca_file is None:
        problems.append("the audit syslog's server certificate is checked against the system CAs only")
    return Finding(
        "tls",
        "Network services use TLS 1.2+ where they leave the machine",
        Severity.MEDIUM,
        not problems,
        "; ".join(problems) or "every service off loopback uses TLS",
        {
            "dicom": {
                "host": dicom.host,
                "tls": dicom.tls.enabled,
                "client_certificates": dicom.tls.require_client_cert,
            },
            "http": {
                "host": http.host,
                "tls": bool(http.tls_certificate),
                "plain_behind_proxy": http.allow_plain_http,
            },
            "syslog": {"enabled": syslog.enabled, "ca_file": bool(syslog.ca_file)},
        },
    )


def configuration_drift(period: Period, now: dict[str, str], changed: list[str]) -> Finding:
    first = period.previous_fingerprint is None
    return Finding(
        "configuration-drift",
        "Configuration unchanged since the last report (or each change expected)",
        Severity.LOW,
        not changed,
        "the first report: this configuration is the baseline"
        if first
        else (f"changed since the last report: {', '.join(changed)}" if changed else "unchanged"),
        {"changed": changed, "fingerprint": now},
    )


CHECKS: tuple[Callable[[Period], Finding], ...] = (
    audit_log_verified,
    checkpoint_age,
    accounts_enrolled,
    accounts_idle,
    break_glass_reviewed,
    failed_login_bursts,
    exports,
    key_ages,
    tls_settings,
)
