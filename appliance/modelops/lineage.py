"""A candidate's lineage checked against this appliance's own records before it is imported.

The release it was trained on must be one this appliance made and signed: a complete release with
that manifest digest, whose Export event (110106) in the audit log carries the same digest. And it
must hold no case that is held out now: a model that learnt from a held-out case would be validated
on what it has seen, so it is refused (the hold-out may have been added after the release).
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import DatasetRelease, Instance, ReleaseItem, ReleaseState, Series
from appliance.errors import ApplianceError
from appliance.research.holdout import held_out_study_pks
from audit.events import EventID
from audit.reader import read_entries
from models.lineage import Lineage


class LineageRefused(ApplianceError):
    """The candidate's training release is not one this appliance signed, or holds held-out cases."""


def _audited(app: Appliance, digest: str) -> bool:
    app.audit.flush()
    for entry in read_entries(app.settings.path(app.settings.audit.directory), app.audit_key):
        if entry.get("event_id") == EventID.EXPORT.code and entry.get("outcome") == 0:
            if any(
                (o.get("detail") or {}).get("manifest_sha256") == digest for o in entry.get("objects", [])
            ):
                return True
    return False


def check_lineage(app: Appliance, lineage: Lineage) -> DatasetRelease:
    """The release ``lineage`` names, if the candidate may be imported; else LineageRefused."""
    ref = lineage.release
    named = f"release {ref.name} v{ref.version} (manifest sha256:{ref.manifest_sha256[:12]}...)"
    with app.session() as session:
        release = session.exec(
            select(DatasetRelease).where(
                DatasetRelease.manifest_digest == ref.manifest_sha256,
                DatasetRelease.state == ReleaseState.COMPLETE,
            )
        ).first()
    if release is None or not _audited(app, ref.manifest_sha256):
        raise LineageRefused(f"trained on {named}, which this appliance did not release and sign")
    held = held_out_study_pks(app)
    with app.session() as session:
        studies, instances = session.exec(
            select(func.count(func.distinct(Series.study_pk)), func.count())
            .select_from(ReleaseItem)
            .join(Instance, Instance.id == ReleaseItem.instance_pk)
            .join(Series, Series.id == Instance.series_pk)
            .where(ReleaseItem.release_pk == release.id, Series.study_pk.in_(held))  # type: ignore[attr-defined]
        ).one()
    if instances:
        raise LineageRefused(
            f"trained on {named}, which holds {instances} instances of {studies} studies that are held out "
            "now: it would be validated on cases it learnt from"
        )
    return release
