"""Start-up reconciliation of the store against the index.

* Temporary files from an interrupted write are deleted: they were never acknowledged.
* A file with no index row was never acknowledged either (the row commits before the success
  status); it is moved to ``store/orphaned/`` rather than deleted, for an administrator to judge.
* An index row whose file is missing is data loss: the row is removed so the index does not lie,
  and the loss is reported and audited with the SOP Instance UID.
* A receipt acknowledged before a crash whose transfer event was not yet durable (the gateway
  writes it when the association ends) is audited now, from the index, marked as recovered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import false
from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import Instance, Patient, Series, Study
from appliance.storage.writer import forget_missing, mark_receipts_audited
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject
from durable import fsync_directory

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    partial_writes_removed: int = 0
    orphans_quarantined: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    receipts_recovered: int = 0


def reconcile(app: Appliance) -> ReconcileReport:
    store = app.store
    report = ReconcileReport(partial_writes_removed=store.remove_partial_writes())
    with app.session() as session:
        indexed = set(session.exec(select(Instance.object_id)).all())
        on_disk = set(store.object_ids())
        quarantine = store.root / "orphaned"
        for object_id in sorted(on_disk - indexed):
            quarantine.mkdir(exist_ok=True)
            store.path_of(object_id).rename(quarantine / store.path_of(object_id).name)
            report.orphans_quarantined.append(object_id)
        if report.orphans_quarantined:
            fsync_directory(quarantine)
    report.missing_files = forget_missing(app, sorted(indexed - on_disk))
    if report.orphans_quarantined or report.missing_files or report.partial_writes_removed:
        log.warning(
            "reconciliation: %d partial writes removed, %d unindexed files quarantined, %d indexed "
            "instances missing their file",
            report.partial_writes_removed,
            len(report.orphans_quarantined),
            len(report.missing_files),
        )
    for uid in report.missing_files:
        app.audit.emit(
            AuditEvent(
                event_id=EventID.SECURITY_ALERT,
                action=Action.DELETE,
                outcome=Outcome.SERIOUS_FAILURE,
                type_code="Object Integrity",
                participants=(Participant(app.settings.dicom.ae_title),),
                objects=(ParticipantObject("instance", uid),),
                description="indexed instance's file is missing from the store",
            )
        )
    report.receipts_recovered = recover_receipts(app)
    return report


@dataclass
class _Receipts:
    pks: list[int] = field(default_factory=list)
    studies: set[str] = field(default_factory=set)
    patients: set[str] = field(default_factory=set)


def recover_receipts(app: Appliance) -> int:
    """Audit the stored receipts whose transfer event was lost in a crash; return how many."""
    instance, series, study, patient = (t.__table__ for t in (Instance, Series, Study, Patient))  # type: ignore[attr-defined]
    query = (
        select(instance.c.id, instance.c.source_ae, series.c.called_ae, study.c.study_uid,
               patient.c.id.label("patient_pk"), patient.c.patient_id_enc)
        .join(series, series.c.id == instance.c.series_pk)
        .join(study, study.c.id == series.c.study_pk)
        .join(patient, patient.c.id == study.c.patient_pk)
        .where(instance.c.receipt_audited == false())
    )  # fmt: skip
    with app.engine.connect() as connection:
        rows = connection.execute(query).all()
    groups: dict[tuple[str, str], _Receipts] = {}
    patient_ids: dict[int, str] = {}
    for row in rows:
        group = groups.setdefault((row.source_ae, row.called_ae), _Receipts())
        group.pks.append(row.id)
        group.studies.add(row.study_uid)
        if row.patient_pk not in patient_ids:
            patient_ids[row.patient_pk] = app.fields.decrypt("patient.patient_id", row.patient_id_enc)
        group.patients.add(patient_ids[row.patient_pk])
    for (source_ae, called_ae), group in sorted(groups.items()):
        app.audit.emit(
            AuditEvent(
                event_id=EventID.INSTANCES_TRANSFERRED,
                action=Action.CREATE,
                outcome=Outcome.SUCCESS,
                participants=(
                    Participant(source_ae, None, is_requestor=True, role="Source"),
                    Participant(called_ae, None, role="Destination"),
                ),
                objects=(
                    *(ParticipantObject("patient", pid) for pid in sorted(group.patients)),
                    *(ParticipantObject("study", uid) for uid in sorted(group.studies)),
                ),
                description=f"recovered at start after an unclean stop: instances={len(group.pks)}",
            )
        )
    if not rows:
        return 0
    app.audit.flush()
    mark_receipts_audited(app, [row.id for row in rows])
    log.warning("recovered the transfer record of %d receipts acknowledged before an unclean stop", len(rows))
    return len(rows)
