"""The inference runner: series-complete jobs in, SEG and SR stored, audited and queued out.

Each runner thread owns one inference process (:mod:`appliance.pipeline.inference.process`) on one device:
one per GPU, or one on the CPU. Jobs are claimed atomically and handed to the process a batch
and one more at a time (two on the CPU), so it prepares the next series while the network runs. A series still
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
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import InferenceResult, Instance, utcnow
from appliance.jobs.payloads import SeriesComplete
from appliance.jobs.queue import ClaimedJob, JobQueue
from appliance.modelops import shadow
from appliance.pipeline.assembly import receiving_series
from appliance.pipeline.inference.messages import (
    Done,
    Failed,
    Reply,
    Routed,
    SeriesOffer,
    SeriesRequest,
    StoredObject,
    Unrouted,
)
from appliance.pipeline.inference.process import series_per_batch, worker_main
from appliance.pipeline.sending import enqueue, result_destinations
from appliance.runtime.periodic import NextPassIn, Periodic
from appliance.storage.writer import ObjectWriter
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject

log = logging.getLogger(__name__)

_ROUTING_SECONDS = 300.0  # reading and preprocessing a series, before the rule's own timeout applies


def _lease(app: Appliance, in_flight: int) -> timedelta:
    """How long a claimed job may stay running before another claimer may take it: the job and
    those ahead of it in its process, each read, prepared and run to its longest timeout."""
    inference = app.settings.inference
    longest = max([inference.timeout_seconds, *(rule.timeout_seconds or 0 for rule in inference.rules)])
    return timedelta(seconds=in_flight * (_ROUTING_SECONDS + longest) + 60)


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
        self.in_flight = series_per_batch(app, device) + 1  # a batch in the network, the next prepared
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

    def _receive(self, job_id: int, deadline: float) -> Reply:
        connection = self._connection  # stop() may close it from another thread meanwhile
        try:
            if connection is None or not connection.poll(max(deadline - time.monotonic(), 0)):
                self.stop()
                raise JobTimeout("the inference process did not answer in time and was stopped")
            reply = connection.recv()
        except (EOFError, OSError) as exc:
            self.stop()
            raise JobTimeout("the inference process ended or was stopped") from exc
        if not isinstance(reply, Reply) or reply.job != job_id:  # replies come in request order
            self.stop()
            # the type and job only: a reply's repr holds the results, patient identity included
            answered = f"{type(reply).__name__} for job {getattr(reply, 'job', None)}"
            raise JobTimeout(f"the inference process answered {answered}, not for job {job_id}")
        return reply

    def submit(self, request: SeriesRequest) -> None:
        """Hand a series to the process; it prepares it while the network runs on the one before."""
        with self._sending:
            if self._process is None or not self._process.is_alive():
                self.start()
            self._connection.send(request)

    def offer(self, offer: SeriesOffer) -> None:
        """Let a running process prepare a quiet series ahead of its job; no answer comes back."""
        with self._sending:
            connection = self._connection
            if connection is None or self._process is None or not self._process.is_alive():
                return  # the job will start a process and prepare the series then
            try:
                connection.send(offer)
            except OSError:
                pass  # stopped meanwhile: the same

    def result(self, job_id: int) -> Done | Unrouted | Failed:
        """The answer for the oldest submitted job; the process is stopped if it takes too long."""
        reply = self._receive(job_id, time.monotonic() + _ROUTING_SECONDS)
        if not isinstance(reply, Routed):
            return reply
        try:
            answer = self._receive(job_id, time.monotonic() + reply.timeout)
        except JobTimeout as exc:
            raise JobTimeout(f"inference exceeded its {reply.timeout:g} s timeout and was stopped") from exc
        if isinstance(answer, Routed):
            self.stop()
            raise JobTimeout(f"the inference process announced job {job_id} twice")
        return answer

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(timeout=10)
        if self._connection is not None:
            self._connection.close()
        self._process = self._connection = None


def _stored_objects(app: Appliance, series_pk: int) -> tuple[StoredObject, ...]:
    with app.session() as session:
        rows = session.exec(
            select(Instance.object_id, Instance.kek_id, Instance.wrapped_key).where(
                Instance.series_pk == series_pk
            )
        ).all()
    return tuple(StoredObject(*row) for row in rows)


def _audit(
    app: Appliance, payload: SeriesComplete, outcome: Outcome, description: str, model: str | None = None
) -> None:
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
                ParticipantObject("study", payload.study_uid),
                ParticipantObject("series", payload.series_uid),
            ),
            description=description,
        )
    )


class JobRecorder:
    """Writes a job's answer: results stored and queued for sending, or the reason; audited either way."""

    def __init__(self, app: Appliance, queue: JobQueue[SeriesComplete], writer: ObjectWriter) -> None:
        self.app, self.queue, self.writer = app, queue, writer

    def _retry_after(self, _attempts: int) -> timedelta:
        return timedelta(seconds=self.app.settings.inference.retry_seconds)

    def record(self, job: ClaimedJob[SeriesComplete], reply: Done | Unrouted | Failed) -> None:
        payload = job.payload
        if isinstance(reply, Unrouted):
            _audit(self.app, payload, Outcome.SUCCESS, reply.reason)
            self.queue.finish(job.id, outcome=reply.reason)
        elif isinstance(reply, Failed):
            backoff = None if reply.permanent else self._retry_after
            failed = self.queue.fail(job.id, reply.reason, backoff)
            _audit(self.app, payload, Outcome.MINOR_FAILURE, f"attempt {failed.attempts}: {reply.reason}")
            log.warning("inference job %s attempt %s failed: %s", job.id, failed.attempts, reply.reason)
        else:
            summary = self._store_results(reply, payload)
            model = f"{reply.model.name} {reply.model.version}"
            _audit(self.app, payload, Outcome.SUCCESS, summary, model)
            log.info("inference job %s: %s", job.id, summary)
            self.queue.finish(job.id, outcome=summary)

    def _store_results(self, reply: Done, payload: SeriesComplete) -> str:
        pks = [self.writer.write(result) for result in reply.results]
        seg, sr = (result.sop_instance_uid for result in reply.results)
        with self.app.session() as session:  # what the worklist and the review pages show
            session.add(
                InferenceResult(
                    job_pk=reply.job,
                    study_uid=payload.study_uid,
                    series_uid=payload.series_uid,
                    seg_uid=seg,
                    sr_uid=sr,
                    model=reply.model.name,
                    version=reply.model.version,
                    volumes_ml=dict(reply.volumes_ml),
                )  # fmt: skip
            )
            session.commit()
        for destination in result_destinations(self.app):
            enqueue(self.app, destination, pks)
        volumes = ", ".join(f"{label} {ml:.1f} mL" for label, ml in reply.volumes_ml.items())
        ahead = "; prepared ahead while the series was quiet" if reply.prepared_ahead else ""
        beside = ""
        if reply.shadow is not None and reply.shadow_run is not None:
            beside = "; " + shadow.record(
                self.app, reply.shadow_run, reply.job, payload.series_uid, reply.model.version, reply.shadow
            )
        return (
            f"{reply.model.name} {reply.model.version} by {reply.why}: "
            f"SEG {seg}, SR {sr}; {volumes}{ahead}; seconds {reply.timings}{beside}"
        )


class InferenceRunner:
    """One thread and one inference process per device; ``on_results`` is called when results are queued."""

    def __init__(self, app: Appliance, on_results: Callable[[], None] | None = None) -> None:
        self.app = app
        self.on_results = on_results
        self.processes = [InferenceProcess(app, device) for device in devices(app)]
        self.queue = JobQueue(app, SeriesComplete)
        self._writer = ObjectWriter(app)
        self._recorder = JobRecorder(app, self.queue, self._writer)
        self._lease = _lease(app, max(process.in_flight for process in self.processes))
        self._stopping = threading.Event()
        self._threads = [
            Periodic(f"inference-{index}", app.settings.inference.poll_seconds, self._step(process))
            for index, process in enumerate(self.processes)
        ]
        # series -> (its last arrival when it was last offered, how many times it was offered)
        self.offered: dict[int, tuple[datetime, int]] = {}
        ahead = 0 < app.settings.inference.prepare_ahead_seconds < app.settings.assembly.quiet_seconds
        poll = app.settings.assembly.poll_seconds
        self._ahead = Periodic("prepare-ahead", poll, self.offer_quiet_series) if ahead else None

    def offer_quiet_series(self, _stop: threading.Event) -> NextPassIn:
        """Offer each newly quiet series to its process (the same one each time for a series).

        A series that goes on receiving after an offer must then be quiet twice as long before the
        next one, so that a sender pausing between instances (a scanner sending slices as it
        reconstructs them) costs a few preparations, not one per instance.
        """
        now, first_wait = utcnow(), self.app.settings.inference.prepare_ahead_seconds
        offered, due = {}, [first_wait]
        for series_pk, received_at in receiving_series(self.app).items():
            last, count = self.offered.get(series_pk, (None, 0))
            wait = first_wait * 2**count - (now - received_at).total_seconds()
            if last != received_at and wait <= 0:
                process = self.processes[series_pk % len(self.processes)]
                process.offer(SeriesOffer(series_pk, _stored_objects(self.app, series_pk)))
                last, count = received_at, count + 1
            elif last != received_at:
                due.append(wait)
            if last is not None:
                offered[series_pk] = (last, count)
        self.offered = offered  # series no longer receiving are forgotten
        return NextPassIn(min(due))  # when the next series falls due (a new one: first_wait)

    def _step(self, process: InferenceProcess):  # type: ignore[no-untyped-def]
        def step(stop: threading.Event) -> None:
            in_flight: deque[ClaimedJob[SeriesComplete]] = deque()
            while not self._stopping.is_set():
                while (
                    len(in_flight) < process.in_flight and (job := self.queue.claim(self._lease)) is not None
                ):
                    process.submit(SeriesRequest(job.id, _stored_objects(self.app, job.payload.series_pk)))
                    in_flight.append(job)
                if not in_flight:
                    return
                job = in_flight.popleft()
                reply: Done | Unrouted | Failed
                try:
                    reply = process.result(job.id)
                except JobTimeout as exc:
                    if self._stopping.is_set():
                        return  # shutting down: the jobs stay running and are released at the next start
                    reply = Failed(job.id, str(exc), permanent=False)
                    while in_flight:  # the process was stopped under them
                        self.queue.requeue(in_flight.popleft().id)
                self._recorder.record(job, reply)
                if isinstance(reply, Done) and self.on_results is not None:
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
        self._writer.close()
