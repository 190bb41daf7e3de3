"""Which stored instances a release takes: the criteria, the held-out set, the AI results."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

from sqlalchemy import func
from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import (
    Decision,
    InferenceResult,
    Instance,
    ResultAssessment,
    Series,
    Study,
    StudySummary,
)
from appliance.errors import ConfigError
from appliance.research.holdout import held_out_study_pks
from appliance.storage.study_summary import unseal

RESULTS = ("none", "all", "accepted")


@dataclass(frozen=True)
class ReleaseCriteria:
    """What a release command asked for; a rerun with the same criteria resumes its version."""

    modalities: tuple[str, ...] = ()
    studies: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None
    profile: str = "research"
    with_results: str = "none"

    def as_dict(self) -> dict:
        values = asdict(self)
        values.update(
            modalities=sorted(self.modalities),
            studies=sorted(self.studies),
            since=self.since.isoformat() if self.since else None,
            until=self.until.isoformat() if self.until else None,
        )
        return values


@dataclass(frozen=True)
class Selection:
    instance_pks: list[int]
    excluded_studies: int  # held-out studies that matched and were left out
    held_out_named: list[str]  # held-out studies the command named (a release refuses them)


def _study_dates(app: Appliance, study_pks: set[int]) -> dict[int, str]:
    """StudyDate (YYYYMMDD) of each study, from its encrypted summary."""
    dates: dict[int, str] = {}
    with app.session() as session:
        rows = session.exec(select(StudySummary).where(StudySummary.study_pk.in_(study_pks))).all()  # type: ignore[attr-defined]
    for row in rows:
        value = unseal(app.fields, row.attributes_enc).get("00080020", {}).get("Value", [""])[0]
        dates[row.study_pk] = str(value)
    return dates


def select_instances(app: Appliance, criteria: ReleaseCriteria) -> Selection:
    own_ae = app.settings.dicom.ae_title
    query = (
        select(
            Instance.id,
            Instance.source_ae,
            Series.modality,
            Study.id,
            Study.study_uid,
            Instance.sop_instance_uid,
        )
        .join(Series, Series.id == Instance.series_pk)
        .join(Study, Study.id == Series.study_pk)
    )
    if criteria.studies:
        query = query.where(Study.study_uid.in_(criteria.studies))  # type: ignore[attr-defined]
    with app.session() as session:
        rows = session.exec(query.order_by(Instance.id)).all()
    held = held_out_study_pks(app)
    named = sorted({row[4] for row in rows if row[3] in held and row[4] in criteria.studies})
    if criteria.studies:
        missing = set(criteria.studies) - {row[4] for row in rows}
        if missing:
            raise ConfigError(f"no stored study {sorted(missing)[0]} (see `appliance studies list`)")
    dates = _study_dates(app, {row[3] for row in rows}) if criteria.since or criteria.until else {}
    since = criteria.since.strftime("%Y%m%d") if criteria.since else ""
    until = criteria.until.strftime("%Y%m%d") if criteria.until else "99999999"
    chosen_images: dict[int, list[int]] = {}
    results: dict[int, list[int]] = {}
    excluded: set[int] = set()
    accepted = accepted_results(app) if criteria.with_results == "accepted" else set()
    clinicians_segs = corrections(app)
    for instance_pk, source_ae, modality, study_pk, _, sop_uid in rows:
        if dates and not since <= dates.get(study_pk, "") <= until:
            continue
        is_result = (source_ae == own_ae and modality in ("SEG", "SR")) or sop_uid in clinicians_segs
        if not is_result and criteria.modalities and modality not in criteria.modalities:
            continue
        if study_pk in held:
            excluded.add(study_pk)
            continue
        if is_result and (criteria.with_results == "all" or sop_uid in accepted):
            results.setdefault(study_pk, []).append(instance_pk)
        elif not is_result:
            chosen_images.setdefault(study_pk, []).append(instance_pk)
    chosen = [pk for pks in chosen_images.values() for pk in pks]
    chosen += [pk for study_pk, pks in results.items() if study_pk in chosen_images for pk in pks]
    return Selection(sorted(chosen), len(excluded), named)


def corrections(app: Appliance) -> set[str]:
    """The SEGs clinicians made to correct AI results: results, not images, in a release."""
    with app.session() as session:
        found = session.exec(
            select(ResultAssessment.corrected_seg_uid).where(ResultAssessment.corrected_seg_uid.is_not(None))  # type: ignore[union-attr]
        ).all()
    return set(found)  # type: ignore[arg-type]


def _newest_assessments(app: Appliance) -> list[tuple[str, str, str, Decision, str | None]]:
    """Each assessed result's series, SEG, SR, newest decision and the correction's SEG if any."""
    with app.session() as session:
        newest = (
            select(ResultAssessment.result_pk, func.max(ResultAssessment.id).label("newest"))
            .group_by(ResultAssessment.result_pk)
            .subquery()
        )
        return list(
            session.exec(
                select(
                    InferenceResult.series_uid,
                    InferenceResult.seg_uid,
                    InferenceResult.sr_uid,
                    ResultAssessment.decision,
                    ResultAssessment.corrected_seg_uid,
                )
                .join(newest, newest.c.result_pk == InferenceResult.id)
                .join(ResultAssessment, ResultAssessment.id == newest.c.newest)
                .order_by(InferenceResult.id)
            ).all()
        )


def accepted_results(app: Appliance) -> set[str]:
    """The objects that label the reviewed cases: the SEG and SR of each result whose newest
    assessment accepts it, and the clinician's SEG of each whose newest assessment corrects it."""
    labels = {
        Decision.ACCEPTED: lambda seg, sr, corrected: {seg, sr},
        Decision.CORRECTED: lambda seg, sr, corrected: {corrected},
        Decision.REJECTED: lambda seg, sr, corrected: set(),
    }
    rows = _newest_assessments(app)
    return {uid for _, seg, sr, decision, corrected in rows for uid in labels[decision](seg, sr, corrected)}


def reviewed_labels(app: Appliance) -> dict[str, str]:
    """Each reviewed series' label SEG: the clinician's correction, or the AI's SEG they accepted
    (the newest result's newest assessment counts)."""
    labels: dict[str, str] = {}
    for series, seg, _, decision, corrected in _newest_assessments(app):
        if decision == Decision.CORRECTED and corrected:
            labels[series] = corrected
        elif decision == Decision.ACCEPTED:
            labels[series] = seg
        else:
            labels.pop(series, None)
    return labels
