"""``appliance holdout``: the cases kept here for validating models, never released.

An entry names a study, or a patient (by the keyed lookup of issuer and ID, so that the patient's
later studies are held out too). ``--fraction F --seed S`` holds out the studies whose keyed hash
with the seed falls under F: the same seed over the same studies gives the same set, and a study
once held out stays so until removed.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import or_
from sqlmodel import select

from appliance.admin.changes import record_change
from appliance.context import Appliance
from appliance.db.tables import HoldOut, Patient, Series, Study
from appliance.errors import ConfigError, NotFound
from audit.events import Action


def _unit(seed: int, study_uid: str) -> float:
    digest = hashlib.sha256(f"{seed}:{study_uid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def add_study(app: Appliance, actor: str, study_uid: str, rule: str = "study") -> bool:
    """Hold out a study; False when it already was."""
    with app.session() as session:
        if session.exec(select(HoldOut).where(HoldOut.study_uid == study_uid)).first() is not None:
            return False
        session.add(HoldOut(study_uid=study_uid, rule=rule, added_by=actor))
        session.commit()
    record_change(app, actor, Action.CREATE, "hold-out study", study_uid, "added", {"rule": rule})
    return True


def add_patient(app: Appliance, actor: str, patient_id: str, issuer: str = "") -> str:
    """Hold out every study, now and later, of this patient; return the entry's name (a lookup
    prefix, never the ID)."""
    if not patient_id.strip():
        raise ConfigError("--patient needs the patient's ID")
    lookup = app.fields.lookup(issuer, patient_id)
    with app.session() as session:
        if session.exec(select(HoldOut).where(HoldOut.patient_lookup == lookup)).first() is None:
            session.add(HoldOut(patient_lookup=lookup, rule="patient", added_by=actor))
            session.commit()
    name = f"patient:{lookup[:12]}"
    record_change(app, actor, Action.CREATE, "hold-out patient", name, "added")
    return name


def add_fraction(app: Appliance, actor: str, fraction: float, seed: int, modality: str | None) -> list[str]:
    """Hold out the studies (with a series of ``modality``) whose hash with ``seed`` is under ``fraction``."""
    if not 0 < fraction < 1:
        raise ConfigError(f"--fraction {fraction}: give a number between 0 and 1, such as 0.2")
    query = select(Study.study_uid).distinct()
    if modality:
        query = query.join(Series, Series.study_pk == Study.id).where(Series.modality == modality)
    with app.session() as session:
        studies = sorted(session.exec(query).all())
    chosen = [uid for uid in studies if _unit(seed, uid) < fraction]
    rule = f"fraction {fraction} seed {seed}" + (f" modality {modality}" if modality else "")
    return [uid for uid in chosen if add_study(app, actor, uid, rule)]


def list_held_out(app: Appliance) -> list[HoldOut]:
    with app.session() as session:
        return list(session.exec(select(HoldOut).order_by(HoldOut.id)).all())


def remove(
    app: Appliance, actor: str, study_uid: str | None, patient_id: str | None, issuer: str = ""
) -> None:
    with app.session() as session:
        if study_uid:
            row = session.exec(select(HoldOut).where(HoldOut.study_uid == study_uid)).first()
            name = study_uid
        else:
            lookup = app.fields.lookup(issuer, patient_id or "")
            row = session.exec(select(HoldOut).where(HoldOut.patient_lookup == lookup)).first()
            name = f"patient:{lookup[:12]}"
        if row is None:
            raise NotFound(f"{name} is not held out")
        session.delete(row)
        session.commit()
    record_change(app, actor, Action.DELETE, "hold-out", name, "removed")


def held_out_study_pks(app: Appliance) -> set[int]:
    """The stored studies that no release may include."""
    with app.session() as session:
        studies = select(HoldOut.study_uid).where(HoldOut.study_uid.is_not(None))  # type: ignore[union-attr]
        patients = select(HoldOut.patient_lookup).where(HoldOut.patient_lookup.is_not(None))  # type: ignore[union-attr]
        query = (
            select(Study.id)
            .join(Patient, Patient.id == Study.patient_pk)
            .where(or_(Study.study_uid.in_(studies), Patient.lookup.in_(patients)))  # type: ignore[attr-defined]
        )
        return set(session.exec(query).all())
