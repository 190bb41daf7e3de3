"""Record a clinician's assessment of an AI result (IHE AIRAI): the row kept with the result, the SR
stored in the study and queued for the PACS that receive results, and the audit event.

The newest assessment of a result counts. A correction names the SEG the clinician made (stored
already, through STOW-RS or the study page's upload): that SEG, not the AI's, is then the label the
research export takes for the case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import Decision, InferenceResult, Instance, ResultAssessment
from appliance.errors import ConfigError
from appliance.pipeline.sending import enqueue, result_destinations
from appliance.review.report import assessment_report
from appliance.security.keys import WrappedKey
from appliance.storage.writer import NewObject, ObjectWriter
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject

REJECT_REASONS = {
    "wrong-anatomy": "segments the wrong structure",
    "missed-finding": "misses a finding",
    "false-finding": "marks something that is not there",
    "poor-boundary": "boundaries too far off to use",
    "image-quality": "the images are not fit to be read",
    "other": "another reason (see the text)",
}
REASON_COLUMN = "result_assessment.reason_text"


@dataclass(frozen=True)
class Assessment:
    """What a clinician decided on one result, and why; ``corrected_seg_uid`` for a correction."""

    decision: Decision
    reason_code: str = ""
    reason_text: str = ""
    corrected_seg_uid: str = ""

    def __post_init__(self) -> None:
        if self.decision == Decision.REJECTED and self.reason_code not in REJECT_REASONS:
            raise ConfigError(f"a rejection needs a reason: one of {', '.join(REJECT_REASONS)}")
        if self.reason_code and self.reason_code not in REJECT_REASONS:
            raise ConfigError(f"unknown reason {self.reason_code!r}: one of {', '.join(REJECT_REASONS)}")
        if (self.decision == Decision.CORRECTED) != bool(self.corrected_seg_uid):
            raise ConfigError(
                "a correction, and only a correction, names its SEG: upload it, or save it from the viewer"
            )

    @property
    def reason(self) -> str:
        """The reason as the SR states it."""
        parts = (REJECT_REASONS.get(self.reason_code, ""), self.reason_text.strip())
        if self.corrected_seg_uid:
            parts = (*parts, f"corrected segmentation {self.corrected_seg_uid}")
        return "; ".join(filter(None, parts))


def latest(session, result_pk: int) -> ResultAssessment | None:  # type: ignore[no-untyped-def]
    """The assessment that counts: the newest."""
    return session.exec(
        select(ResultAssessment)
        .where(ResultAssessment.result_pk == result_pk)
        .order_by(ResultAssessment.id.desc())  # type: ignore[attr-defined]
    ).first()


def _headers(app: Appliance, sop_uids: list[str]) -> list[Dataset]:
    with app.session() as session:
        rows = session.exec(select(Instance).where(Instance.sop_instance_uid.in_(sop_uids))).all()  # type: ignore[attr-defined]
    return [
        dcmread(
            BytesIO(app.store.get_header(r.object_id, WrappedKey(r.kek_id, r.wrapped_key))),
            stop_before_pixels=True,
        )
        for r in rows
    ]


def _report(
    app: Appliance, writer: ObjectWriter, result: InferenceResult, assessment: Assessment, who: str
) -> str:
    """The assessment as an SR in the study, stored and queued for the PACS that get results."""
    evidence = [result.seg_uid, result.sr_uid, *filter(None, [assessment.corrected_seg_uid])]
    headers = _headers(app, evidence)
    ai_report = next(h for h in headers if h.SOPInstanceUID == result.sr_uid)
    model = f"{result.model} {result.version}"
    report = assessment_report(
        ai_report, headers, assessment.decision.value, assessment.reason, who, model, datetime.now(UTC)
    )
    pk = writer.write(NewObject.result(report, app.settings.dicom.ae_title))
    for destination in result_destinations(app):
        enqueue(app, destination, [pk])
    return str(report.SOPInstanceUID)


def record(
    app: Appliance,
    writer: ObjectWriter,
    result: InferenceResult,
    assessment: Assessment,
    who: Participant,
) -> ResultAssessment:
    """Keep ``assessment`` of ``result`` by ``who`` (the signed-in person)."""
    sealed = (
        app.fields.encrypt(REASON_COLUMN, assessment.reason_text) if assessment.reason_text.strip() else None
    )
    row = ResultAssessment(
        result_pk=result.id,  # type: ignore[arg-type]
        decision=assessment.decision,
        username=who.user_id,
        reason_code=assessment.reason_code or None,
        reason_text_enc=sealed,
        corrected_seg_uid=assessment.corrected_seg_uid or None,
        assessment_uid=_report(app, writer, result, assessment, who.user_id),
    )
    with app.session() as session:
        session.add(row)
        session.commit()
        session.refresh(row)
    details = {"decision": assessment.decision.value, "reason": assessment.reason_code}
    if assessment.corrected_seg_uid:
        details["correction"] = assessment.corrected_seg_uid
    app.audit.emit(
        AuditEvent(
            event_id=EventID.PATIENT_RECORD,
            action=Action.CREATE,
            outcome=Outcome.SUCCESS,
            type_code="AI Result Assessment",
            participants=(who,),
            objects=(
                ParticipantObject("study", result.study_uid),
                ParticipantObject("segmentation", result.seg_uid, details),
            ),
            description=f"AI result {result.model} {result.version} {assessment.decision.value}",
        )
    )
    return row
