"""Start-up reconciliation of the store against the index.

* Temporary files from an interrupted write are deleted: they were never acknowledged.
* A file with no index row was never acknowledged either (the row commits before the success
  status); it is moved to ``store/orphaned/`` rather than deleted, for an administrator to judge.
* An index row whose file is missing is data loss: the row is removed so the index does not lie,
  and the loss is reported and audited with the SOP Instance UID.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import Instance, Series
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject
from durable import fsync_directory

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    partial_writes_removed: int = 0
    orphans_quarantined: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)


def reconcile(app: Appliance) -> ReconcileReport:
    store = app.store
    report = ReconcileReport(partial_writes_removed=store.remove_partial_writes())
    with app.session() as session:
        rows = session.exec(select(Instance.object_id, Instance.id)).all()
        indexed = {object_id: pk for object_id, pk in rows}
        on_disk = set(store.object_ids())
        quarantine = store.root / "orphaned"
        for object_id in sorted(on_disk - indexed.keys()):
            quarantine.mkdir(exist_ok=True)
            store.path_of(object_id).rename(quarantine / store.path_of(object_id).name)
            report.orphans_quarantined.append(object_id)
        if report.orphans_quarantined:
            fsync_directory(quarantine)
        for object_id in sorted(indexed.keys() - on_disk):
            instance = session.get(Instance, indexed[object_id])
            assert instance is not None
            series = session.get(Series, instance.series_pk)
            if series is not None:
                series.instance_count -= 1
                session.add(series)
            report.missing_files.append(instance.sop_instance_uid)
            session.delete(instance)
        session.commit()
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
    return report
