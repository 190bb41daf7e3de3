"""Validation reports as they are kept: the newest of a version, opened with its signature checked,
summarised or laid out for a terminal; and the active version they are measured against. Reading
them needs no model (and no PyTorch): the web process and ``models promote`` only read.
"""

from __future__ import annotations

import hashlib
import json

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlmodel import select

from anonymizer.release import dsse
from appliance.context import Appliance, report_signing_key
from appliance.db.tables import Model, ModelState, ModelValidation
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject

PAYLOAD_TYPE = "application/vnd.imaging-appliance.model-validation+json"


def active_version(app: Appliance, name: str) -> Model | None:
    with app.session() as session:
        return session.exec(select(Model).where(Model.name == name, Model.state == ModelState.ACTIVE)).first()


def keep(
    app: Appliance, actor: str, report: dict, row: ModelValidation, type_code: str, description: str
) -> ModelValidation:
    """Sign ``report`` into ``row`` (its envelope and digest), store the row, and audit it: a
    validation and a derived version's equivalence are kept alike, and the promotion gate reads both."""
    row.envelope = dsse.sign(json.dumps(report, indent=2).encode(), report_signing_key(app), PAYLOAD_TYPE)
    row.digest = hashlib.sha256(row.envelope).hexdigest()
    with app.session() as session:
        session.add(row)
        session.commit()
        session.refresh(row)
    app.audit.emit(
        AuditEvent(
            event_id=EventID.APPLICATION_ACTIVITY,
            action=Action.EXECUTE,
            outcome=Outcome.SUCCESS if row.passed else Outcome.MINOR_FAILURE,
            type_code=type_code,
            participants=(Participant(actor, is_requestor=True),),
            objects=(
                ParticipantObject("model", f"{row.name} {row.version}", {"sha256": row.digest, "id": row.id}),
            ),
            description=description,
        )
    )
    app.audit.flush()
    return row


def opened(app: Appliance, row: ModelValidation) -> dict:
    """The report a kept envelope holds, its signature checked with the report key's public half."""
    public_key = load_pem_public_key(app.signing_public_key_path.read_bytes())
    return json.loads(dsse.verify(row.envelope, [public_key], PAYLOAD_TYPE))  # type: ignore[list-item]


def reports(app: Appliance, name: str, version: str | None = None) -> list[ModelValidation]:
    with app.session() as session:
        query = select(ModelValidation).where(ModelValidation.name == name)
        if version:
            query = query.where(ModelValidation.version == version)
        return list(session.exec(query.order_by(ModelValidation.id.desc())).all())  # type: ignore[union-attr]


def summary(app: Appliance, name: str, version: str) -> str:
    """The newest report of a version in a few words (``models list``, the console), or ""."""
    found = reports(app, name, version)
    if not found:
        return ""
    newest = found[0]
    if newest.passed:
        return f"passed vs {newest.baseline} (report {newest.id})"
    return f"failed vs {newest.baseline} (report {newest.id}: {', '.join(newest.failed_criteria)})"


def readable(report: dict) -> str:
    """The report (a validation, or a derived version's equivalence) as a table for a terminal."""
    if "derived" in report:
        return _readable_equivalence(report)
    lines = [
        f"{report['model']} {report['candidate']} against active {report['active']}: "
        f"{len(report['cases'])} held-out cases, " + ("PASSED" if report["passed"] else "FAILED"),
        "",
        f"{'class':12} {'metric':13} {'candidate':>10} {'active':>10} "
        f"{'improvement [interval]':>34} {'margin':>8}",
    ]
    for name, metrics in report["aggregate"].items():
        for metric, row in metrics.items():
            gain = row["improvement"]
            interval = f"{gain['mean']:+.4f} [{gain['low']:+.4f}, {gain['high']:+.4f}]"
            lines.append(
                f"{name:12} {metric:13} {row['candidate']:10.4f} {row['baseline']:10.4f} {interval:>34} "
                f"{row['margin']:8g}"
            )
    lines.append("")
    lines += [f"[{'pass' if c['passed'] else 'FAIL'}] {c['name']}: {c['detail']}" for c in report["criteria"]]
    return "\n".join(lines)


def _readable_equivalence(report: dict) -> str:
    lines = [
        f"{report['model']} {report['derived']} ({report['backend']} {report['precision']}) "
        f"against its source {report['source']}: {len(report['cases'])} held-out series, "
        + ("EQUIVALENT" if report["passed"] else "NOT EQUIVALENT: " + ", ".join(report["failed_classes"])),
        f"labels must agree per class with Dice >= {report['min_dice']}; largest logit difference "
        f"{report['largest_logit_difference']:.3g}; model bytes {report['model_bytes']}",
        "",
        f"{'series':>8} {'class':12} {'dice':>8} {'source ml':>10} {'derived ml':>10} {'seconds':>15}",
    ]
    for index, case in enumerate(report["cases"], 1):
        seconds = f"{case['seconds']['source']:.2f} / {case['seconds']['derived']:.2f}"
        for label, dice in case["dice_agreement"].items():
            volume = case["volume_ml"][label]
            lines.append(
                f"{index:>8} {label:12} {dice:8.4f} {volume['source']:10.2f} {volume['derived']:10.2f} "
                f"{seconds:>15}"
            )
    return "\n".join(lines)
