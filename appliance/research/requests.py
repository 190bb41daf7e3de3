"""Researchers' requests for a release: a cohort query and its purpose, approved or refused by an
admin before anything leaves. An approved request runs as ``appliance datasets run-request N`` (a
process of its own, as the command line's releases do), which records the version it released or
why it failed; run again, it resumes that version. Every step is an audit event naming who."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import date

from sqlmodel import select

from anonymizer.errors import AnonymizerError
from anonymizer.profile import named_profile
from anonymizer.release.manifest import check_name
from appliance.context import Appliance
from appliance.db.tables import ReleaseRequest, RequestState, utcnow
from appliance.errors import ConfigError, NotFound
from appliance.research.releases import Releaser
from appliance.research.selection import RESULTS, ReleaseCriteria
from appliance.research.workspaces import get_workspace
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject


def _audit(app: Appliance, who: Participant, row: ReleaseRequest, what: str, ok: bool = True) -> None:
    app.audit.emit(
        AuditEvent(
            event_id=EventID.APPLICATION_ACTIVITY,
            action=Action.UPDATE if row.state != RequestState.PENDING else Action.CREATE,
            outcome=Outcome.SUCCESS if ok else Outcome.SERIOUS_FAILURE,
            type_code="Release Request",
            participants=(who,),
            objects=(ParticipantObject("release-request", str(row.id), {"dataset": row.name}),),
            description=f"release request {row.id} ({row.name}, by {row.requested_by}) {what}",
        )
    )
    app.audit.flush()


def criteria_of(row: ReleaseRequest) -> ReleaseCriteria:
    c = row.criteria
    day = lambda value: date.fromisoformat(value) if value else None  # noqa: E731
    return ReleaseCriteria(
        modalities=tuple(c["modalities"]), since=day(c["since"]), until=day(c["until"]),
        profile=c["profile"], with_results=c["with_results"],
    )  # fmt: skip


def ask(
    app: Appliance, who: Participant, name: str, workspace: str, criteria: ReleaseCriteria, purpose: str
) -> ReleaseRequest:
    """A pending request, checked as the release itself would check it (name, workspace, profile)."""
    try:
        check_name(name)
        named_profile(criteria.profile, app.settings.deidentify.profiles)
    except AnonymizerError as exc:
        raise ConfigError(str(exc)) from None
    get_workspace(app, workspace)
    if criteria.with_results not in RESULTS:
        raise ConfigError(f"with results: one of {', '.join(RESULTS)}")
    if criteria.studies:
        raise ConfigError("a request describes a cohort (modalities, dates); it cannot name studies")
    if len(purpose.strip()) < 10:
        raise ConfigError("say what the data is for, in at least 10 characters")
    row = ReleaseRequest(
        name=name, workspace=workspace, criteria=criteria.as_dict(), purpose=purpose.strip()[:1000],
        requested_by=who.user_id,
    )  # fmt: skip
    with app.session() as session:
        session.add(row)
        session.commit()
        session.refresh(row)
    _audit(app, who, row, "asked for")
    return row


def listed(app: Appliance, requested_by: str | None = None) -> list[ReleaseRequest]:
    """Newest first; one researcher's only, when named."""
    statement = select(ReleaseRequest).order_by(ReleaseRequest.id.desc())  # type: ignore[union-attr]
    if requested_by is not None:
        statement = statement.where(ReleaseRequest.requested_by == requested_by)
    with app.session() as session:
        return list(session.exec(statement).all())


def _get(session, request_id: int) -> ReleaseRequest:  # type: ignore[no-untyped-def]
    row = session.get(ReleaseRequest, request_id)
    if row is None:
        raise NotFound(f"no release request {request_id}")
    return row


def decide(
    app: Appliance, who: Participant, request_id: int, approve: bool, note: str = ""
) -> ReleaseRequest:
    """An admin's decision on a pending request; a refusal says why."""
    if not approve and len(note.strip()) < 5:
        raise ConfigError("a refusal says why, for the researcher who asked")
    with app.session() as session:
        row = _get(session, request_id)
        if row.state != RequestState.PENDING:
            raise ConfigError(f"release request {request_id} is {row.state.value}, not pending")
        row.state = RequestState.APPROVED if approve else RequestState.REFUSED
        row.decided_by, row.decided_at, row.note = who.user_id, utcnow(), note.strip()[:512] or None
        session.add(row)
        session.commit()
        session.refresh(row)
    _audit(app, who, row, "approved" if approve else f"refused: {row.note}")
    return row


def start(app: Appliance, request_id: int) -> None:
    """Run an approved request in a process of its own (the de-identifying workers fork from it,
    not from the threaded web server); the process records how it ended."""
    command = [sys.executable, "-m", "appliance.cli.main", "datasets", "run-request", str(request_id)]
    process = subprocess.Popen(
        [*command, "--home", str(app.settings.home)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    threading.Thread(target=process.wait, name=f"release-request-{request_id}", daemon=True).start()


def fulfil(app: Appliance, request_id: int, workers: int = 0) -> ReleaseRequest:
    """Release what an approved request asked for (or resume it); record the version or the failure."""
    with app.session() as session:
        row = _get(session, request_id)
    if row.state not in (RequestState.APPROVED, RequestState.FAILED):
        raise ConfigError(f"release request {request_id} is {row.state.value}: only an approved one runs")
    actor = f"{row.decided_by} (approving request {row.id} of {row.requested_by})"
    state, note, version = RequestState.FAILED, "interrupted: run it again to resume", None
    try:
        version = Releaser(app, actor, workers).release(row.name, row.workspace, criteria_of(row)).version
        state, note = RequestState.RELEASED, None
    except (ConfigError, AnonymizerError, NotFound) as exc:
        note = str(exc)[:512]
        raise
    finally:
        with app.session() as session:
            done = _get(session, request_id)
            done.state, done.note, done.version = state, note, version
            session.add(done)
            session.commit()
            session.refresh(done)
        released = state == RequestState.RELEASED
        _audit(app, Participant(actor, is_requestor=True), done, state.value, ok=released)
    return done
