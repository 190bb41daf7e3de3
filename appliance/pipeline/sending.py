"""The persistent send queue: C-STORE jobs to destinations, retried with exponential backoff.

A job names a destination and instance rows; it is attempted at once by ``appliance send`` and
then by the send worker of a running appliance until it succeeds or runs out of attempts.
Failed jobs stay listed (``appliance sends list``) and can be retried (``appliance sends retry``).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlmodel import select

from appliance.admin.peers import get_destination
from appliance.context import Appliance
from appliance.db.tables import Destination, Instance, Job
from appliance.errors import ApplianceError, NotFound
from appliance.jobs.payloads import SendInstances
from appliance.jobs.queue import ClaimedJob, JobQueue
from appliance.runtime.periodic import Periodic
from appliance.security.keys import WrappedKey
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject
from dicom_gateway import scu, tls
from dicom_gateway.errors import GatewayError

log = logging.getLogger(__name__)

# A send attempt is one association: far shorter than this, unless its claimer died.
_LEASE = timedelta(minutes=15)


def send_queue(app: Appliance) -> JobQueue[SendInstances]:
    return JobQueue(app, SendInstances)


def enqueue(app: Appliance, destination: str, instance_pks: list[int], lease: timedelta | None = None) -> Job:
    """Queue a send job (already claimed by this process when a ``lease`` is given)."""
    get_destination(app, destination)
    payload = SendInstances(destination=destination, instances=instance_pks)
    with app.session() as session:
        job = send_queue(app).add(session, payload, app.settings.send.max_attempts, lease)
        session.commit()
    return job


def send_now(app: Appliance, destination: str, instance_pks: list[int]) -> Job:
    """Queue a send job claimed by this process and make its first attempt at once (no worker can
    take it in between); return the job as it then stands (a failed attempt leaves it pending, for
    a running appliance's send worker to retry)."""
    job = enqueue(app, destination, instance_pks, lease=_LEASE)
    payload = SendInstances(destination=destination, instances=instance_pks)
    return _run(app, send_queue(app), ClaimedJob(job.id, 0, job.max_attempts, payload))  # type: ignore[arg-type]


def result_destinations(app: Appliance) -> list[str]:
    """Where results go: ``inference.destinations`` if named, else the destinations added with
    ``--results``; none otherwise (the results stay stored here)."""
    configured = app.settings.inference.destinations
    if configured:
        return list(configured)
    with app.session() as session:
        marked = select(Destination.name).where(Destination.results).order_by(Destination.name)
        return list(session.exec(marked).all())


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


def echo_destination(app: Appliance, name: str) -> Destination:
    """C-ECHO the destination ``name`` (for the CLI, the API and the console alike); GatewayError
    says why it failed."""
    destination = get_destination(app, name)
    scu.echo(remote_of(app, destination), app.settings.send.ae_title)
    return destination


def _outgoing(app: Appliance, instance_pks: list[int]) -> list[scu.OutgoingInstance]:
    with app.session() as session:
        rows = session.exec(select(Instance).where(Instance.id.in_(instance_pks))).all()  # type: ignore[union-attr]
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


def _run(app: Appliance, queue: JobQueue[SendInstances], claimed: ClaimedJob[SendInstances]) -> Job:
    job_id, payload = claimed.id, claimed.payload
    error: str | None = None
    try:
        destination = get_destination(app, payload.destination)
        scu.store(remote_of(app, destination), app.settings.send.ae_title, _outgoing(app, payload.instances))
    except (GatewayError, ApplianceError, OSError) as exc:
        error = str(exc)
    if error is None:
        job = queue.finish(job_id)
    else:
        job = queue.fail(job_id, error, lambda attempts: backoff(app, attempts))
    log.info("send job %s to %s: attempt %s %s", job_id, payload.destination, job.attempts, job.state.value)
    app.audit.emit(
        AuditEvent(
            event_id=EventID.INSTANCES_TRANSFERRED,
            action=Action.READ,
            outcome=Outcome.SUCCESS if error is None else Outcome.MINOR_FAILURE,
            participants=(
                Participant(app.settings.send.ae_title, is_requestor=True, role="Source"),
                Participant(payload.destination, role="Destination"),
            ),
            objects=(ParticipantObject("send-job", str(job_id)),),
            description=f"instances={len(payload.instances)}" + (f"; {error}" if error else ""),
        )
    )
    return job


def retry(app: Appliance, job_id: int) -> Job:
    """Make a failed job pending again with a fresh set of attempts."""
    return send_queue(app).retry(job_id)


def list_jobs(app: Appliance) -> list[Job]:
    return send_queue(app).all()


def _send_due(app: Appliance, stop: threading.Event) -> None:
    queue = send_queue(app)
    while not stop.is_set() and (claimed := queue.claim(_LEASE)) is not None:
        _run(app, queue, claimed)


def send_worker(app: Appliance) -> Periodic:
    """Runs due send jobs until stopped."""
    return Periodic("send-worker", app.settings.send.poll_seconds, lambda stop: _send_due(app, stop))
