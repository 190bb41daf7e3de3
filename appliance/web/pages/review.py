"""A study's review page: its AI results with their findings, and the clinician's assessment of
each (accept, reject with a reason, or correct with a SEG of their own, uploaded here or saved from
the viewer). See :mod:`appliance.review.assessments` for what an assessment does."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import Decision, InferenceResult
from appliance.errors import ConfigError, NotFound
from appliance.review import assessments, corrections
from appliance.review.assessments import REJECT_REASONS, Assessment
from appliance.web.api.deps import AppDep, CurrentCaller
from appliance.web.catalogue import CallerCatalogue
from appliance.web.clinical_records import ClinicalRecords
from appliance.web.pages.rendering import render
from appliance.web.pages.worklist import findings_of, record_value, seg_series, viewer_link


def router(records: ClinicalRecords) -> APIRouter:
    pages = APIRouter(include_in_schema=False)

    @pages.get("/studies/{study}", response_class=HTMLResponse)
    def study_page(request: Request, study: str, caller: CurrentCaller, app: AppDep) -> HTMLResponse:
        record = CallerCatalogue(records, caller).open_study(study)  # scope checked, read audited
        with app.session() as session:
            results = session.exec(
                select(InferenceResult).where(InferenceResult.study_uid == study).order_by(InferenceResult.id)
            ).all()
            reviewed = [(result, assessments.latest(session, result.id)) for result in results]  # type: ignore[arg-type]
        series_of = seg_series(app, list(results))
        rows = [
            {
                "id": result.id, "model": f"{result.model} {result.version}", "findings": findings_of(result),
                "viewer": viewer_link(study, series_of.get(result.seg_uid)), "created": result.created_at,
                "decision": assessment.decision.value if assessment else "",
                "by": assessment.username if assessment else "",
                "reason": REJECT_REASONS.get(assessment.reason_code or "", "") if assessment else "",
                "correction": assessment.corrected_seg_uid if assessment else "",
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
        assessment = Assessment(decision, reason_code, reason_text)  # a correction without its SEG refused
        assessments.record(app, records.writer(), _result(app, study, result), assessment, caller.participant)
        return RedirectResponse(f"/studies/{study}", status_code=303)

    @pages.post("/studies/{study}/results/{result}/correction", status_code=204)
    async def correct(study: str, result: int, request: Request, caller: CurrentCaller, app: AppDep) -> None:
        """The corrected SEG as the request's body (``application/dicom``), read into memory only."""
        limit = app.settings.dicom.max_instance_bytes
        if int(request.headers.get("content-length") or 0) > limit:
            raise ConfigError(f"the SEG is larger than the {limit} bytes an instance may have")
        body = await request.body()
        await run_in_threadpool(_correct, app, CallerCatalogue(records, caller), study, result, body)

    return pages


def _result(app: Appliance, study: str, result: int) -> InferenceResult:
    with app.session() as session:
        row = session.get(InferenceResult, result)
    if row is None or row.study_uid != study:
        raise NotFound(f"no result {result} in this study")
    return row


def _correct(app: Appliance, catalogue: CallerCatalogue, study: str, result: int, part10: bytes) -> None:
    catalogue.open_study(study)  # the same scope as the page
    row = _result(app, study, result)
    corrections.check(corrections.header(part10), row)
    outcome = catalogue.store([part10], study, correcting=row)
    if outcome.failed:
        raise ConfigError(f"the SEG was not stored (DICOM status 0x{outcome.failed[0][2]:04X})")
