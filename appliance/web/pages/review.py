"""A study's review page: its AI results with their findings, and the clinician's assessment of
each (accept, or reject with a reason). An assessment is kept with the result, audited, sent to
the PACS that receive results as an SR naming the result (so the PACS keeps it too), and makes an
accepted result part of the cases that ``datasets release --with-results accepted`` takes."""

from __future__ import annotations

from datetime import UTC, datetime
from io import BytesIO
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import Decision, InferenceResult, Instance, ResultAssessment
from appliance.errors import ConfigError, NotFound
from appliance.pipeline.assessment_report import assessment_report
from appliance.pipeline.sending import enqueue, result_destinations
from appliance.security.keys import WrappedKey
from appliance.storage.writer import NewObject
from appliance.web.api.deps import AppDep, CurrentCaller
from appliance.web.catalogue import CallerCatalogue
from appliance.web.clinical_records import ClinicalRecords
from appliance.web.pages.rendering import render
from appliance.web.pages.worklist import findings_of, record_value, seg_series, viewer_link
from audit.events import Action, AuditEvent, EventID, Outcome, ParticipantObject

REJECT_REASONS = {
    "wrong-anatomy": "segments the wrong structure",
    "missed-finding": "misses a finding",
    "false-finding": "marks something that is not there",
    "poor-boundary": "boundaries too far off to use",
    "image-quality": "the images are not fit to be read",
    "other": "another reason (see the text)",
}
_REASON_COLUMN = "result_assessment.reason_text"


def _latest(session, result_pk: int) -> ResultAssessment | None:  # type: ignore[no-untyped-def]
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
            BytesIO(app.store.get(r.object_id, WrappedKey(r.kek_id, r.wrapped_key))), stop_before_pixels=True
        )
        for r in rows
    ]


def _report(
    app: Appliance,
    records: ClinicalRecords,
    result: InferenceResult,
    decision: Decision,
    reason: str,
    who: str,
) -> str:
    """The assessment as an SR in the study, stored and queued for the PACS that get results."""
    headers = _headers(app, [result.seg_uid, result.sr_uid])
    ai_report = next(h for h in headers if h.SOPInstanceUID == result.sr_uid)
    model = f"{result.model} {result.version}"
    report = assessment_report(ai_report, headers, decision.value, reason, who, model, datetime.now(UTC))
    pk = records.writer().write(NewObject.result(report, app.settings.dicom.ae_title))
    for destination in result_destinations(app):
        enqueue(app, destination, [pk])
    return str(report.SOPInstanceUID)


def router(records: ClinicalRecords) -> APIRouter:
    pages = APIRouter(include_in_schema=False)

    @pages.get("/studies/{study}", response_class=HTMLResponse)
    def study_page(request: Request, study: str, caller: CurrentCaller, app: AppDep) -> HTMLResponse:
        record = CallerCatalogue(records, caller).open_study(study)  # scope checked, read audited
        with app.session() as session:
            results = session.exec(
                select(InferenceResult).where(InferenceResult.study_uid == study).order_by(InferenceResult.id)
            ).all()
            reviewed = [(result, _latest(session, result.id)) for result in results]  # type: ignore[arg-type]
        series_of = seg_series(app, list(results))
        rows = [
            {
                "id": result.id, "model": f"{result.model} {result.version}", "findings": findings_of(result),
                "viewer": viewer_link(study, series_of.get(result.seg_uid)), "created": result.created_at,
                "decision": assessment.decision.value if assessment else "",
                "by": assessment.username if assessment else "",
                "reason": REJECT_REASONS.get(assessment.reason_code or "", "") if assessment else "",
            }
            for result, assessment in reviewed
        ]  # fmt: skip
        return render(
            request, "study.html", study=study, results=rows, reasons=REJECT_REASONS,
            viewer=viewer_link(study, None), patient=record_value(record, "00100010"),
            patient_id=record_value(record, "00100020"),
            date=record_value(record, "00080020"), description=record_value(record, "00081030"),
        )  # fmt: skip

    @pages.post("/studies/{study}/results/{result}/assessment")
    def assess(
        study: str,
        result: int,
        caller: CurrentCaller,
        app: AppDep,
        decision: Annotated[Decision, Form()],
        reason_code: Annotated[str, Form()] = "",
        reason_text: Annotated[str, Form()] = "",
    ) -> Response:
        CallerCatalogue(records, caller).open_study(study)  # the same scope as the page
        if decision == Decision.REJECTED and reason_code not in REJECT_REASONS:
            raise ConfigError(f"a rejection needs a reason: one of {', '.join(REJECT_REASONS)}")
        with app.session() as session:
            row = session.get(InferenceResult, result)
            if row is None or row.study_uid != study:
                raise NotFound(f"no result {result} in this study")
            reason = "; ".join(filter(None, (REJECT_REASONS.get(reason_code, ""), reason_text.strip())))
            sealed = app.fields.encrypt(_REASON_COLUMN, reason_text) if reason_text.strip() else None
            session.add(
                ResultAssessment(
                    result_pk=result,
                    decision=decision,
                    username=caller.name,
                    reason_code=reason_code or None,
                    reason_text_enc=sealed,
                    assessment_uid=_report(app, records, row, decision, reason, caller.name),
                )
            )
            session.commit()
        app.audit.emit(
            AuditEvent(
                event_id=EventID.PATIENT_RECORD,
                action=Action.CREATE,
                outcome=Outcome.SUCCESS,
                type_code="AI Result Assessment",
                participants=(caller.participant,),
                objects=(
                    ParticipantObject("study", study),
                    ParticipantObject(
                        "segmentation", row.seg_uid, {"decision": decision.value, "reason": reason_code}
                    ),
                ),
                description=f"AI result {row.model} {row.version} {decision.value}",
            )
        )
        return RedirectResponse(f"/studies/{study}", status_code=303)

    return pages
