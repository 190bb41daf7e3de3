"""The inference runner: series-complete jobs in, SEG and SR stored, audited and queued out.

Each runner thread owns one inference process (:mod:`appliance.pipeline.inference.process`) on one device:
one per GPU, or one on the CPU. Jobs are claimed atomically and handed to the process two at a
time, so it prepares the next series while the network runs on the current one. A series still
receiving but quiet for ``prepare_ahead_seconds`` is offered to a process before it completes:
the process reads and preprocesses it then, and uses that work when the series' job arrives
with the same instances (any other instance set is prepared afresh). Each answer is
recorded on its job: ``outcome`` for a done job (the results, or why no rule
matched), ``last_error`` for a failed one. A job that exceeds its time has its process killed
(the next job gets a fresh one); a job whose model raised or timed out is retried after
``retry_seconds`` up to ``max_attempts``; a series that cannot form a volume fails at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import (
    Destination,
    Instance,
    Job,
    JobKind,
    JobState,
    Series,
    SeriesState,
    utcnow,
)
from appliance.pipeline.assembly import receiving_series
from appliance.pipeline.inference.process import worker_main
from appliance.pipeline.sending import enqueue
from appliance.runtime.periodic import NextPassIn, Periodic
from appliance.storage.store import new_object_id
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject
from dicom_gateway.received import instance_from_part10

log = logging.getLogger(__name__)

_ROUTING_SECONDS = 300.0  # reading and preprocessing a series, before the rule's own timeout applies
_IN_FLIGHT = 2  # per process: one in the network, the next one being prepared


class JobTimeout(Exception):
    """The inference process did not answer in time (it has been stopped)."""


def devices(app: Appliance) -> list[str]:
    import torch

    inference = app.settings.inference
    if inference.device != "auto":
        return [inference.device] * (inference.workers or 1)
    gpus = torch.cuda.device_count()
    if gpus:
        return [f"cuda:{index % gpus}" for index in range(inference.workers or gpus)]
    return ["cpu"] * (inference.workers or 1)


class InferenceProcess:
    """One child process on one device, started on first use and after it is killed."""

    def __init__(self, app: Appliance, device: str) -> None:
        self.app = app
        self.device = device
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._connection: Any = None
        self._sending = threading.Lock()  # the runner's thread and the prepare-ahead thread both send

    def start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(
            target=worker_main,
            args=(str(self.app.settings.home), self.device, child, os.getpid()),
            name=f"inference-{self.device}",
            daemon=True,
        )
        self._process.start()
        child.close()
        self._connection = parent

    def _receive(self, job_id: int, deadline: float) -> dict:
        connection = self._connection  # stop() may close it from another thread meanwhile
        try:
            if connection is None or not connection.poll(max(deadline - time.monotonic(), 0)):
                self.stop()
                raise JobTimeout("the inference process did not answer in time and was stopped")
            reply = connection.recv()
        except (EOFError, OSError) as exc:
            self.stop()
            raise JobTimeout("the inference process ended or was stopped") from exc
        if reply.get("job") != job_id:  # replies come in request order; anything else is a bug
            self.stop()
            raise JobTimeout(f"the inference process answered for job {reply.get('job')}, not {job_id}")
        return reply

    def submit(self, job_id: int, request: dict) -> None:
        """Hand a series to the process; it prepares it while the network runs on the one before."""
        with self._sending:
            if self._process is None or not self._process.is_alive():
                self.start()
            self._connection.send({"job": job_id, **request})

    def offer(self, series_pk: int, request: dict) -> None:
        """Let a running process prepare a quiet series ahead of its job; no answer comes back."""
        with self._sending:
            connection = self._connection
            if connection is None or self._process is None or not self._process.is_alive():
                return  # the job will start a process and prepare the series then
            try:
                connection.send({"ahead": series_pk, **request})
            except OSError:
                pass  # stopped meanwhile: the same

    def result(self, job_id: int) -> dict:
        """The answer for the oldest submitted job; the process is stopped if it takes too long."""
        reply = self._receive(job_id, time.monotonic() + _ROUTING_SECONDS)
        if reply["kind"] != "routed":
            return reply
        limit = float(reply["timeout"])
        try:
            return self._receive(job_id, time.monotonic() + limit)
        except JobTimeout as exc:
            raise JobTimeout(f"inference exceeded its {limit:g} s timeout and was stopped") from exc

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(timeout=10)
        if self._connection is not None:
            self._connection.close()
        self._process = self._connection = None


@dataclass(frozen=True)
class _Stored:
    pk: int
    sop_instance_uid: str


def _store_result(app: Appliance, study_pk: int, data: bytes) -> _Stored:
    """Encrypt and index one result object as its own complete series of the study."""
    own_ae = app.settings.dicom.ae_title
    instance = instance_from_part10(data, own_ae, own_ae)
    object_id = new_object_id()
    wrapped = app.store.put(object_id, data)
    with app.session() as session:
        series = Series(
            study_pk=study_pk,
            series_uid=instance.series_uid,
            called_ae=own_ae,
            modality=instance.modality,
            state=SeriesState.COMPLETE,
            instance_count=1,
            completed_at=utcnow(),
        )
        session.add(series)
        session.flush()
        row = Instance(
            sop_instance_uid=instance.sop_instance_uid,
            sop_class_uid=instance.sop_class_uid,
            transfer_syntax_uid=instance.transfer_syntax_uid,
            series_pk=series.id,  # type: ignore[arg-type]
            source_ae=own_ae,
            size=len(data),
            object_id=object_id,
            kek_id=wrapped.kek_id,
            wrapped_key=wrapped.blob,
        )
        session.add(row)
        session.commit()
        return _Stored(row.id, instance.sop_instance_uid)  # type: ignore[arg-type]


def _destinations(app: Appliance) -> list[str]:
    configured = app.settings.inference.destinations
    if configured:
        return list(configured)
    with app.session() as session:
        return list(session.exec(select(Destination.name).order_by(Destination.name)).all())


def _claim(app: Appliance) -> Job | None:
    with app.session() as session:
        candidates = session.exec(
            select(Job.id)
            .where(Job.kind == JobKind.SERIES_COMPLETE, Job.state == JobState.PENDING)
            .where(Job.next_attempt_at <= utcnow())
            .order_by(Job.next_attempt_at, Job.id)
            .limit(8)
        ).all()
        for job_id in candidates:
            claimed = session.exec(  # type: ignore[call-overload]
                update(Job)
                .where(Job.id == job_id, Job.state == JobState.PENDING)
                .values(state=JobState.RUNNING, updated_at=utcnow())
            )
            session.commit()
            if claimed.rowcount == 1:
                return session.get(Job, job_id)
    return None


def _request(app: Appliance, series_pk: int) -> dict:
    with app.session() as session:
        rows = session.exec(
            select(Instance.object_id, Instance.kek_id, Instance.wrapped_key).where(
                Instance.series_pk == series_pk
            )
        ).all()
    return {"objects": [list(row) for row in rows]}


def _audit(app: Appliance, job: Job, outcome: Outcome, description: str, model: str | None = None) -> None:
    participants = [Participant(app.settings.dicom.ae_title, role="Application", is_requestor=True)]
    if model:
        participants.append(Participant(model, role="Model"))
    app.audit.emit(
        AuditEvent(
            event_id=EventID.INSTANCES_ACCESSED,
            action=Action.EXECUTE,
            outcome=outcome,
            type_code="Inference",
            participants=tuple(participants),
            objects=(
                ParticipantObject("study", job.payload.get("study_uid", "")),
                ParticipantObject("series", job.payload.get("series_uid", "")),
            ),
            description=description,
        )
    )


def _finish(
    app: Appliance, job_id: int, *, outcome: str | None = None, error: str | None = None, retry: bool = False
) -> Job:
    inference = app.settings.inference
    with app.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.attempts += 1
        job.updated_at = utcnow()
        job.outcome = outcome
        job.last_error = error
        if error is None:
            job.state = JobState.DONE
        elif retry and job.attempts < job.max_attempts:
            job.state = JobState.PENDING
            job.next_attempt_at = utcnow() + timedelta(seconds=inference.retry_seconds)
        else:
            job.state = JobState.FAILED
        session.add(job)
        session.commit()
        session.refresh(job)
        return job


def _record_results(app: Appliance, job: Job, reply: dict) -> str:
    with app.session() as session:
        study_pk = session.exec(select(Series.study_pk).where(Series.id == job.payload["series_pk"])).one()
    seg = _store_result(app, study_pk, reply["seg"])
    sr = _store_result(app, study_pk, reply["sr"])
    for destination in _destinations(app):
        enqueue(app, destination, [seg.pk, sr.pk])
    volumes = ", ".join(f"{label} {ml:.1f} mL" for label, ml in reply["volumes_ml"].items())
    ahead = "; prepared ahead while the series was quiet" if reply.get("prepared_ahead") else ""
    return (
        f"{reply['model']} {reply['version']} by {reply['rule']}: "
        f"SEG {seg.sop_instance_uid}, SR {sr.sop_instance_uid}; {volumes}{ahead}; seconds {reply['timings']}"
    )


def record(app: Appliance, job: Job, reply: dict) -> Job:
    """Record a job's answer: results stored and queued, or the reason, audited either way."""
    assert job.id is not None
    if reply["kind"] == "unrouted":
        _audit(app, job, Outcome.SUCCESS, reply["reason"])
        return _finish(app, job.id, outcome=reply["reason"])
    if reply["kind"] == "failed":
        finished = _finish(app, job.id, error=reply["reason"], retry=not reply["permanent"])
        _audit(app, job, Outcome.MINOR_FAILURE, f"attempt {finished.attempts}: {reply['reason']}")
        log.warning("inference job %s attempt %s failed: %s", job.id, finished.attempts, reply["reason"])
        return finished
    summary = _record_results(app, job, reply)
    _audit(app, job, Outcome.SUCCESS, summary, f"{reply['model']} {reply['version']}")
    log.info("inference job %s: %s", job.id, summary)
    return _finish(app, job.id, outcome=summary)


def _requeue(app: Appliance, job_id: int) -> None:
    """A job in flight when its process was stopped for another job's fault: pending, no attempt."""
    with app.session() as session:
        session.exec(  # type: ignore[call-overload]
            update(Job).where(Job.id == job_id, Job.state == JobState.RUNNING).values(state=JobState.PENDING)
        )
        session.commit()


class InferenceRunner:
    """One thread and one inference process per device; ``on_results`` is called when results are queued."""

    def __init__(self, app: Appliance, on_results: Callable[[], None] | None = None) -> None:
        self.app = app
        self.on_results = on_results
        self.processes = [InferenceProcess(app, device) for device in devices(app)]
        self._stopping = threading.Event()
        self._threads = [
            Periodic(f"inference-{index}", app.settings.inference.poll_seconds, self._step(process))
            for index, process in enumerate(self.processes)
        ]
        # series -> (its last arrival when it was last offered, how many times it was offered)
        self._offered: dict[int, tuple[datetime, int]] = {}
        ahead = 0 < app.settings.inference.prepare_ahead_seconds < app.settings.assembly.quiet_seconds
        self._ahead = (
            Periodic("prepare-ahead", app.settings.assembly.poll_seconds, self._offer) if ahead else None
        )

    def _offer(self, _stop: threading.Event) -> NextPassIn:
        """Offer each newly quiet series to its process (the same one each time for a series).

        A series that goes on receiving after an offer must then be quiet twice as long before the
        next one, so that a sender pausing between instances (a scanner sending slices as it
        reconstructs them) costs a few preparations, not one per instance.
        """
        now, first_wait = utcnow(), self.app.settings.inference.prepare_ahead_seconds
        offered, due = {}, [first_wait]
        for series_pk, received_at in receiving_series(self.app).items():
            last, count = self._offered.get(series_pk, (None, 0))
            wait = first_wait * 2**count - (now - received_at).total_seconds()
            if last != received_at and wait <= 0:
                process = self.processes[series_pk % len(self.processes)]
                process.offer(series_pk, _request(self.app, series_pk))
                last, count = received_at, count + 1
            elif last != received_at:
                due.append(wait)
            if last is not None:
                offered[series_pk] = (last, count)
        self._offered = offered  # series no longer receiving are forgotten
        return NextPassIn(min(due))  # when the next series falls due (a new one: first_wait)

    def _step(self, process: InferenceProcess):  # type: ignore[no-untyped-def]
        def step(stop: threading.Event) -> None:
            in_flight: deque[Job] = deque()
            while not self._stopping.is_set():
                while len(in_flight) < _IN_FLIGHT and (job := _claim(self.app)) is not None:
                    process.submit(job.id, _request(self.app, int(job.payload["series_pk"])))  # type: ignore[arg-type]
                    in_flight.append(job)
                if not in_flight:
                    return
                job = in_flight.popleft()
                try:
                    reply = process.result(job.id)  # type: ignore[arg-type]
                except JobTimeout as exc:
                    if self._stopping.is_set():
                        return  # shutting down: the jobs stay running and are released at the next start
                    reply = {"kind": "failed", "reason": str(exc), "permanent": False}
                    while in_flight:  # the process was stopped under them
                        _requeue(self.app, in_flight.popleft().id)  # type: ignore[arg-type]
                record(self.app, job, reply)
                if reply["kind"] == "done" and self.on_results is not None:
                    self.on_results()  # the send queue has them: no need to wait for its next pass

        return step

    def wake(self) -> None:
        """A series is complete: look for jobs now."""
        for thread in self._threads:
            thread.wake()

    def start(self) -> None:
        for process in self.processes:
            process.start()  # the models load while the first series arrives
        for thread in self._threads:
            thread.start()
        if self._ahead is not None:
            self._ahead.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._ahead is not None:
            self._ahead.stop(timeout=30)
        for process in self.processes:
            process.stop()
        for thread in self._threads:
            thread.stop(timeout=30)
