"""The persistent send queue: C-STORE jobs to destinations, retried with exponential backoff.

A job names a destination and instance rows; it is attempted at once by ``appliance send`` and
then by the send worker of a running appliance until it succeeds or runs out of attempts.
Failed jobs stay listed (``appliance sends list``) and can be retried (``appliance sends retry``).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from appliance.admin.peers import get_destination
from appliance.context import Appliance
from appliance.db.tables import Destination, Instance, Job, JobKind, JobState, utcnow
from appliance.errors import ApplianceError, NotFound
from appliance.runtime.periodic import Periodic
from appliance.security.keys import WrappedKey
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject
from dicom_gateway import scu, tls
from dicom_gateway.errors import GatewayError

log = logging.getLogger(__name__)


def enqueue(app: Appliance, destination: str, instance_pks: list[int]) -> Job:
    get_destination(app, destination)
    job = Job(
        kind=JobKind.SEND,
        payload={"destination": destination, "instances": instance_pks},
        max_attempts=app.settings.send.max_attempts,
    )
    with app.session() as session:
        session.add(job)
        session.commit()
    return job


def remote_of(app: Appliance, destination: Destination) -> scu.RemoteAE:
    context = None
    if destination.tls:
        own = app.settings.dicom.tls
        context = tls.client_context(
            app.settings.path(own.ca_file) if own.ca_file else None,
            app.settings.path(own.cert_file) if own.cert_file else None,
            app.settings.path(own.key_file) if own.key_file else None,
        )
    return scu.RemoteAE(destination.ae_title, destination.host, destination.port, context)


def _outgoing(app: Appliance, session: Session, instance_pks: list[int]) -> list[scu.OutgoingInstance]:
    rows = session.exec(select(Instance).where(Instance.id.in_(instance_pks))).all()
    if len(rows) != len(set(instance_pks)):
        raise NotFound(f"{len(set(instance_pks)) - len(rows)} instance(s) of the job no longer exist")
    return [
        scu.OutgoingInstance(
            row.sop_instance_uid,
            row.sop_class_uid,
            row.transfer_syntax_uid,
            app.store.get(row.object_id, WrappedKey(row.kek_id, row.wrapped_key)),
        )
        for row in rows
    ]


def backoff(app: Appliance, attempts: int) -> timedelta:
    settings = app.settings.send
    seconds = settings.backoff_initial_seconds * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.backoff_max_seconds))


def _claim(app: Appliance, job_id: int) -> bool:
    with app.session() as session:
        claimed = session.exec(  # type: ignore[call-overload]
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.PENDING)
            .values(state=JobState.RUNNING, updated_at=utcnow())
        )
        session.commit()
        return claimed.rowcount == 1


def attempt(app: Appliance, job_id: int) -> Job:
    """Claim and run one attempt of a pending send job; return the job as it then stands."""
    if not _claim(app, job_id):
        raise NotFound(f"send job {job_id} is not pending (already running, done or failed)")
    with app.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        destination_name = job.payload["destination"]
        error: str | None = None
        count = len(job.payload["instances"])
        try:
            destination = get_destination(app, destination_name)
            scu.store(
                remote_of(app, destination),
                app.settings.send.ae_title,
                _outgoing(app, session, job.payload["instances"]),
            )
        except (GatewayError, ApplianceError, OSError) as exc:
            error = str(exc)
        job.attempts += 1
        job.updated_at = utcnow()
        job.last_error = error
        if error is None:
            job.state = JobState.DONE
        elif job.attempts >= job.max_attempts:
            job.state = JobState.FAILED
        else:
            job.state = JobState.PENDING
            job.next_attempt_at = utcnow() + backoff(app, job.attempts)
        session.add(job)
        session.commit()
    log.info("send job %s to %s: attempt %s %s", job_id, destination_name, job.attempts, job.state.value)
    app.audit.emit(
        AuditEvent(
            event_id=EventID.INSTANCES_TRANSFERRED,
            action=Action.READ,
            outcome=Outcome.SUCCESS if error is None else Outcome.MINOR_FAILURE,
            participants=(
                Participant(app.settings.send.ae_title, is_requestor=True, role="Source"),
                Participant(destination_name, role="Destination"),
            ),
            objects=(ParticipantObject("send-job", str(job_id)),),
            description=f"instances={count}" + (f"; {error}" if error else ""),
        )
    )
    return job


def retry(app: Appliance, job_id: int) -> Job:
    """Make a failed job pending again with a fresh set of attempts."""
    with app.session() as session:
        job = session.get(Job, job_id)
        if job is None or job.kind != JobKind.SEND:
            raise NotFound(f"no send job {job_id}")
        if job.state not in (JobState.FAILED, JobState.PENDING):
            raise NotFound(f"send job {job_id} is {job.state.value}; only failed or pending jobs are retried")
        job.state, job.attempts, job.next_attempt_at = JobState.PENDING, 0, utcnow()
        session.add(job)
        session.commit()
        return job


def list_jobs(app: Appliance) -> list[Job]:
    with app.session() as session:
        return list(session.exec(select(Job).where(Job.kind == JobKind.SEND).order_by(Job.id)).all())


def _due(app: Appliance) -> list[int]:
    with app.session() as session:
        return list(
            session.exec(
                select(Job.id)
                .where(Job.kind == JobKind.SEND, Job.state == JobState.PENDING)
                .where(Job.next_attempt_at <= utcnow())
                .order_by(Job.next_attempt_at)
                .limit(16)
            ).all()
        )


def _send_due(app: Appliance, stop: threading.Event) -> None:
    for job_id in _due(app):
        if stop.is_set():
            return
        try:
            attempt(app, job_id)
        except NotFound:
            continue  # claimed elsewhere (the CLI's first attempt)


def send_worker(app: Appliance) -> Periodic:
    """Runs due send jobs until stopped."""
    return Periodic("send-worker", app.settings.send.poll_seconds, lambda stop: _send_due(app, stop))
