"""The clinicians' worklist: their studies with the AI's state, model and findings.

The studies come through the caller's catalogue (their scope; the view is a Query audit event).
The states refresh on their own from ``/worklist/states``, which names studies by UID only: a
refresh reads no patient data. Filter, sort and pagination run over the caller's studies here.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import InferenceResult, Instance, Job, JobKind, JobState, Series
from appliance.web.api.deps import AppDep, Caller, CurrentCaller
from appliance.web.catalogue import CallerCatalogue
from appliance.web.clinical_records import ClinicalRecords
from appliance.web.pages.rendering import render
from dicom_gateway.dicomweb.query import Query

PAGE_SIZE = 50
COLUMNS = [("patient", "Patient"), ("date", "Date"), ("modalities", "Modality"), ("description", "Study"),
           ("state", "AI state")]  # fmt: skip
STATES = ["waiting", "running", "done", "no rule matched", "failed"]


class WorklistView(BaseModel):
    """What the worklist shows: filters, the sort (``column:asc|desc``) and the page."""

    q: str = ""
    modality: str = ""
    state: str = ""
    sort: str = "date:desc"
    page: int = 1

    def sorting(self, columns: dict[str, str], default: str) -> tuple[str, str]:
        key, _, order = self.sort.partition(":")
        return (key if key in columns else default), ("asc" if order == "asc" else "desc")


@dataclass(frozen=True)
class AiState:
    state: str  # waiting, running, done, no rule matched, failed: <reason>
    model: str = ""
    findings: str = ""
    viewer: str = ""  # the viewer opened on the result: the images with the SEG over them


def viewer_link(study_uid: str, seg_series_uid: str | None) -> str:
    """OHIF on the study; given the SEG's series, with the segmentation laid over its images."""
    link = f"/viewer/viewer?StudyInstanceUIDs={study_uid}"
    return link + (f"&initialSeriesInstanceUID={seg_series_uid}" if seg_series_uid else "")


def seg_series(app: Appliance, results: list[InferenceResult]) -> dict[str, str]:
    """The series UID of each result's SEG (by the SEG's SOP instance UID)."""
    with app.session() as session:
        rows = session.exec(
            select(Instance.sop_instance_uid, Series.series_uid)
            .join(Series, Series.id == Instance.series_pk)
            .where(Instance.sop_instance_uid.in_([r.seg_uid for r in results]))  # type: ignore[attr-defined]
        ).all()
    return dict(rows)


def record_value(record: dict, tag: str) -> str:
    values = record.get(tag, {}).get("Value") or [""]
    first = values[0]
    return str(first.get("Alphabetic", "") if isinstance(first, dict) else first)


def findings_of(result: InferenceResult) -> str:
    return ", ".join(f"{label} {ml:.1f} mL" for label, ml in result.volumes_ml.items())


def ai_states(app: Appliance, study_uids: set[str]) -> dict[str, AiState]:
    """Each study's AI state: its newest result, else its series' jobs (the least advanced wins)."""
    with app.session() as session:  # every row, matched here: an IN of 10,000 UIDs costs more than it saves
        results = [
            r
            for r in session.exec(select(InferenceResult).order_by(InferenceResult.id))
            if r.study_uid in study_uids
        ]
        jobs = session.exec(
            select(Job.state, Job.payload, Job.last_error)
            .where(Job.kind == JobKind.SERIES_COMPLETE)
            .order_by(Job.id)  # type: ignore[arg-type]
        ).all()
    states: dict[str, AiState] = {}
    for job_state, payload, last_error in jobs:
        study = payload.get("study_uid")
        if study not in study_uids:
            continue
        if job_state == JobState.PENDING:
            states[study] = AiState("waiting")
        elif job_state == JobState.RUNNING:
            states[study] = AiState("running")
        elif job_state == JobState.FAILED:
            states[study] = AiState(f"failed: {last_error or 'no reason recorded'}")
        elif study not in states:  # done: with a result (below), else no model's rule matched it
            states[study] = AiState("no rule matched")
    series_of = seg_series(app, results)
    for result in results:
        if states.get(result.study_uid, AiState("done")).state == "no rule matched":
            link = viewer_link(result.study_uid, series_of.get(result.seg_uid))
            model = f"{result.model} {result.version}"
            states[result.study_uid] = AiState("done", model, findings_of(result), link)
    return states


def router(records: ClinicalRecords) -> APIRouter:
    pages = APIRouter(include_in_schema=False)

    def worklist(request: Request, caller: Caller, view: WorklistView) -> HTMLResponse:
        studies = CallerCatalogue(records, caller).studies(Query.parse([]))
        states = ai_states(records.app, {record_value(s, "0020000D") for s in studies})
        rows = []
        for record in studies:
            uid = record_value(record, "0020000D")
            ai = states.get(uid, AiState("waiting"))
            modalities = "/".join(v for v in record.get("00080061", {}).get("Value", []))
            rows.append({
                "study_uid": uid, "patient": record_value(record, "00100010"),
                "patient_id": record_value(record, "00100020"),
                "date": record_value(record, "00080020"), "modalities": modalities,
                "description": record_value(record, "00081030"), "state": ai.state, "model": ai.model,
                "findings": ai.findings, "viewer": ai.viewer or viewer_link(uid, None),
            })  # fmt: skip
        needle = view.q.strip().lower()
        rows = [
            r for r in rows
            if (not needle or needle in r["patient"].lower() or needle in r["patient_id"].lower())
            and (not view.modality or view.modality in r["modalities"].split("/"))
            and (not view.state or r["state"].startswith(view.state))
        ]  # fmt: skip
        key, order = view.sorting(dict(COLUMNS), "date")
        rows.sort(key=lambda r: (r[key], r["study_uid"]), reverse=order != "asc")
        pages_count = max(1, ceil(len(rows) / PAGE_SIZE))
        page = min(max(view.page, 1), pages_count)
        all_modalities = sorted(
            {m for r in rows for m in r["modalities"].split("/") if m} | ({view.modality} - {""})
        )
        return render(
            request, "worklist.html", rows=rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], total=len(rows),
            page=page, pages=pages_count, view=view, sort=key, order=order, columns=COLUMNS, states=STATES,
            modalities=all_modalities,
        )  # fmt: skip

    @pages.get("/worklist", response_class=HTMLResponse)
    def worklist_page(request: Request, caller: CurrentCaller) -> HTMLResponse:
        return worklist(request, caller, WorklistView())

    @pages.post("/worklist", response_class=HTMLResponse)
    def worklist_filtered(
        request: Request, caller: CurrentCaller, view: Annotated[WorklistView, Form()]
    ) -> HTMLResponse:
        """Filters, sort and page come in a form, never in the URL: a filter can be a patient's name."""
        return worklist(request, caller, view)

    @pages.get("/worklist/states")
    def worklist_states(caller: CurrentCaller, app: AppDep) -> dict[str, dict]:
        """The AI state of each study the caller may see, by UID (no patient data)."""
        with app.session() as session:
            visible = {row.study_uid for row in CallerCatalogue(records, caller).visible_rows(session)}
        return {uid: vars(ai) for uid, ai in ai_states(app, visible).items()}

    return pages
