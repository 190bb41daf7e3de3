"""A study's review page: its AI results with their findings, and the clinician's assessment of
each (accept, or reject with a reason). An assessment is kept with the result, audited, and makes
the result part of the cases that ``datasets release --with-results accepted`` takes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import select

from appliance.db.tables import Decision, InferenceResult, ResultAssessment
from appliance.errors import ConfigError, NotFound
from appliance.web.api.deps import AppDep, CurrentCaller
from appliance.web.catalogue import CallerCatalogue
from appliance.web.clinical_records import ClinicalRecords
from appliance.web.pages.rendering import render
from appliance.web.pages.worklist import findings_of, record_value, seg_series, viewer_link
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject

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
            session.add(
                ResultAssessment(
                    result_pk=result,
                    decision=decision,
                    username=caller.name,
                    reason_code=reason_code or None,
                    reason_text_enc=app.fields.encrypt(_REASON_COLUMN, reason_text)
                    if reason_text.strip()
                    else None,
                )  # fmt: skip
            )
            session.commit()
        app.audit.emit(
            AuditEvent(
                event_id=EventID.PATIENT_RECORD,
                action=Action.CREATE,
                outcome=Outcome.SUCCESS,
                type_code="AI Result Assessment",
                participants=(
                    Participant(caller.name, host=caller.address, is_requestor=True, role=caller.role.value),
                ),
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
