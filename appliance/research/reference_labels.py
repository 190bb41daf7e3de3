"""``appliance holdout labels import``: reference SEGs of held-out series, what models are validated on.

A reference SEG must be a Segmentation naming, in its Referenced Series Sequence, a stored series of
a held-out study. It is stored like any received instance (encrypted, indexed, in its study) and
recorded as that series' reference label; importing another for the same series replaces it.
Each import is audited (110107 Import) with the study it labels.
"""

from __future__ import annotations

from pathlib import Path

from pydicom.uid import SegmentationStorage
from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import ReferenceLabel, Series, Study
from appliance.errors import ConfigError
from appliance.research.holdout import held_out_study_pks
from appliance.review.corrections import header
from appliance.storage.writer import NewObject, ObjectWriter
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject
from dicom_gateway.errors import RejectedInstance
from dicom_gateway.received import instance_from_part10
from models.seg_labels import referenced_series

SOURCE_AE = "HOLDOUT-LABELS"


def _labelled_series(app: Appliance, path: Path, part10: bytes) -> tuple[str, str]:
    """The held-out series (and its study) the SEG at ``path`` labels; else ConfigError saying why."""
    seg = header(part10)
    if seg.get("SOPClassUID") != SegmentationStorage:
        raise ConfigError(f"{path.name}: not a DICOM Segmentation (SEG); a reference label is one")
    held = held_out_study_pks(app)
    with app.session() as session:
        for series_uid in sorted(referenced_series(seg)):
            row = session.exec(
                select(Series.study_pk, Study.study_uid)
                .join(Study, Study.id == Series.study_pk)
                .where(Series.series_uid == series_uid)
            ).first()
            if row is None:
                continue
            if row[0] not in held:
                raise ConfigError(
                    f"{path.name}: the series it labels is in study {row[1]}, which is not held out "
                    "(`appliance holdout add --study UID` first)"
                )
            return series_uid, row[1]
    raise ConfigError(f"{path.name}: it names no stored series (Referenced Series Sequence)")


def import_labels(app: Appliance, actor: str, paths: list[Path]) -> list[tuple[str, str]]:
    """Check every file first, then store each SEG and record it; return (series, SEG) pairs."""
    checked = []
    for path in paths:
        try:
            part10 = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
        checked.append((path, part10, *_labelled_series(app, path, part10)))
    writer = ObjectWriter(app)
    done = []
    try:
        for path, part10, series_uid, study_uid in checked:
            try:
                instance = instance_from_part10(part10, SOURCE_AE, app.settings.dicom.ae_title)
                writer.write(NewObject.received(instance))
            except RejectedInstance as exc:
                raise ConfigError(f"{path.name}: not stored ({exc.comment})") from None
            with app.session() as session:
                row = session.exec(
                    select(ReferenceLabel).where(ReferenceLabel.series_uid == series_uid)
                ).first()
                row = row or ReferenceLabel(series_uid=series_uid, seg_uid="", imported_by=actor)
                row.seg_uid, row.imported_by = instance.sop_instance_uid, actor
                session.add(row)
                session.commit()
            app.audit.emit(
                AuditEvent(
                    event_id=EventID.IMPORT,
                    action=Action.CREATE,
                    outcome=Outcome.SUCCESS,
                    type_code="Reference Label",
                    participants=(Participant(actor, is_requestor=True),),
                    objects=(ParticipantObject("study", study_uid), ParticipantObject("series", series_uid)),
                    description=f"reference SEG {instance.sop_instance_uid} for a held-out series",
                )
            )
            done.append((series_uid, instance.sop_instance_uid))
    finally:
        writer.close()
        app.audit.flush()
    return done
