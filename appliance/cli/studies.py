"""``appliance studies``: patients, studies, series, instance counts and assembly state.

Shows decrypted patient names and IDs to the operator, so every use is audited.
"""

from __future__ import annotations

import click
from sqlmodel import select

from appliance.cli.common import actor, emit_rows, home_option, json_option, open_home
from appliance.db.tables import Patient, Series, Study
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject


@click.command()
@home_option
@json_option
def studies(home: str | None, as_json: bool) -> None:
    """List patients, studies and series with instance counts and state."""
    app = open_home(home)
    fields = app.fields
    with app.session() as session:
        found = session.exec(
            select(Patient, Study, Series)
            .join(Study, Study.patient_pk == Patient.id)
            .join(Series, Series.study_pk == Study.id)
            .order_by(Study.created_at, Series.id)
        ).all()
    rows = [
        {
            "patient_id": fields.decrypt("patient.patient_id", patient.patient_id_enc),
            "patient_name": fields.decrypt("patient.name", patient.name_enc),
            "birth_date": fields.decrypt("patient.birth_date", patient.birth_date_enc),
            "study_uid": study.study_uid,
            "series_uid": series.series_uid,
            "called_ae": series.called_ae,
            "modality": series.modality,
            "instances": series.instance_count,
            "state": series.state.value,
        }
        for patient, study, series in found
    ]
    app.audit.emit(
        AuditEvent(
            event_id=EventID.QUERY,
            action=Action.EXECUTE,
            outcome=Outcome.SUCCESS,
            participants=(Participant(actor(), is_requestor=True),),
            objects=tuple(ParticipantObject("study", uid) for uid in sorted({r["study_uid"] for r in rows})),
            description="appliance studies",
        )
    )
    emit_rows(
        rows,
        as_json,
        ["patient_id", "patient_name", "study_uid", "series_uid", "modality", "instances", "state"],
    )
