"""The held-out cases models are validated on: each series of a held-out study that has a label.

A series' label is, first, a reference SEG imported for it (``appliance holdout labels import``),
else a clinician's correction of an AI result on it, else the AI's SEG a clinician accepted. Series
are read from the encrypted store in memory, never written out.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import Instance, ReferenceLabel, Series, Study
from appliance.research.holdout import held_out_study_pks
from appliance.research.selection import corrections, reviewed_labels
from appliance.security.keys import WrappedKey
from models.volume import Volume, build_volume

_RESULTS = ("SEG", "SR")


@dataclass(frozen=True)
class HeldOutCase:
    series_uid: str
    study_uid: str
    modality: str
    seg_uid: str
    label_source: str  # reference, corrected or accepted


def held_out_series(app: Appliance) -> list[tuple[str, str, str | None]]:
    """(series UID, study UID, modality) of every image series of a held-out study, labelled or not."""
    held = held_out_study_pks(app)
    with app.session() as session:
        return list(
            session.exec(
                select(Series.series_uid, Study.study_uid, Series.modality)
                .join(Study, Study.id == Series.study_pk)
                .where(Series.study_pk.in_(held))  # type: ignore[attr-defined]
                .where(Series.modality.not_in(_RESULTS))  # type: ignore[union-attr]
                .order_by(Series.id)
            ).all()
        )


def labelled_cases(app: Appliance) -> list[HeldOutCase]:
    rows = held_out_series(app)
    with app.session() as session:
        reference = dict(session.exec(select(ReferenceLabel.series_uid, ReferenceLabel.seg_uid)).all())
    reviewed, corrected = reviewed_labels(app), corrections(app)
    cases = []
    for series_uid, study_uid, modality in rows:
        if series_uid in reference:
            cases.append(
                HeldOutCase(series_uid, study_uid, modality or "", reference[series_uid], "reference")
            )
        elif series_uid in reviewed:
            seg = reviewed[series_uid]
            source = "corrected" if seg in corrected else "accepted"
            cases.append(HeldOutCase(series_uid, study_uid, modality or "", seg, source))
    return cases


def _read(app: Appliance, row: Instance) -> Dataset:
    data = app.store.get(row.object_id, WrappedKey(row.kek_id, row.wrapped_key))
    return dcmread(BytesIO(data))


def stored_instance(app: Appliance, sop_uid: str) -> Dataset:
    with app.session() as session:
        row = session.exec(select(Instance).where(Instance.sop_instance_uid == sop_uid)).one()
    return _read(app, row)


def series_volume(app: Appliance, series_uid: str) -> Volume:
    with app.session() as session:
        rows = session.exec(
            select(Instance)
            .join(Series, Series.id == Instance.series_pk)
            .where(Series.series_uid == series_uid)
        ).all()
    return build_volume(_read(app, row) for row in rows)
