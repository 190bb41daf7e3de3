"""The durable job queue every stage shares: add, claim with a lease, finish, fail, requeue, retry.

A claimed job is ``running`` under a lease (``lease_owner``, ``lease_until``). A job whose lease
has run out (its claimer died) can be claimed again by anyone, so several machines can share one
queue; on PostgreSQL the claim locks its candidates with ``FOR UPDATE SKIP LOCKED``, so claimers do
not wait on each other. A failed attempt goes back to ``pending`` after a backoff while attempts
remain; a job out of attempts, or failed for good, is dead-lettered (``failed``), kept with its
last error until someone retries it. Every stage is idempotent, so running a job twice is safe.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from sqlalchemy import or_, update
from sqlmodel import Session, select

from appliance.context import Appliance
from appliance.db.tables import Job, JobState, utcnow
from appliance.errors import NotFound
from appliance.jobs.payloads import JobPayload

P = TypeVar("P", bound=JobPayload)

_HOST = socket.gethostname()


def _owner() -> str:
    return f"{_HOST}:{os.getpid()}"


@dataclass(frozen=True)
class ClaimedJob(Generic[P]):
    id: int
    attempts: int  # attempts made before this one
    max_attempts: int
    payload: P


class JobQueue(Generic[P]):
    """The jobs of one kind, with their typed payload."""

    def __init__(self, app: Appliance, payload_type: type[P]) -> None:
        self.app = app
        self.payload_type = payload_type
        self.kind = payload_type.kind

    # -- adding and reading -------------------------------------------------------------------
    def add(self, session: Session, payload: P, max_attempts: int, lease: timedelta | None = None) -> Job:
        """Add a job in the caller's transaction (it commits), so the job and its cause land together.
        With a ``lease`` the job is added already claimed by this process, for an attempt it makes
        at once: no worker can take it in between."""
        job = Job(kind=self.kind, payload=payload.model_dump(mode="json"), max_attempts=max_attempts)
        if lease is not None:
            now = utcnow()
            job.state, job.lease_owner, job.lease_until = JobState.RUNNING, _owner(), now + lease
        session.add(job)
        return job

    def payload(self, job: Job) -> P:
        return self.payload_type.model_validate(job.payload)

    def all(self) -> list[Job]:
        with self.app.session() as session:
            return list(session.exec(select(Job).where(Job.kind == self.kind).order_by(Job.id)).all())

    # -- claiming -----------------------------------------------------------------------------
    def claim(self, lease: timedelta, job_id: int | None = None) -> ClaimedJob[P] | None:
        """The next due job (or ``job_id`` if it is due), now running under a lease; None if none."""
        now = utcnow()
        claimable = or_(
            (Job.state == JobState.PENDING) & (Job.next_attempt_at <= now),
            (Job.state == JobState.RUNNING) & (Job.lease_until < now),  # its claimer died
        )
        with self.app.session() as session:
            query = select(Job).where(Job.kind == self.kind, claimable)
            if job_id is not None:
                query = query.where(Job.id == job_id)
            query = query.order_by(Job.next_attempt_at, Job.id).limit(1).with_for_update(skip_locked=True)
            job = session.exec(query).first()
            if job is None:
                return None
            claimed = session.exec(  # type: ignore[call-overload]
                update(Job)
                .where(Job.id == job.id, claimable)  # SQLite has no row locks: the update decides
                .values(state=JobState.RUNNING, lease_owner=_owner(), lease_until=now + lease, updated_at=now)
            )
            session.commit()
            if claimed.rowcount != 1:
                return None
            return ClaimedJob(job.id, job.attempts, job.max_attempts, self.payload(job))  # type: ignore[arg-type]

    # -- ending an attempt --------------------------------------------------------------------
    def _end(self, job_id: int, change: Callable[[Job], None]) -> Job:
        with self.app.session() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise NotFound(f"no job {job_id}")
            job.attempts += 1
            job.updated_at = utcnow()
            job.lease_owner = job.lease_until = None
            change(job)
            session.add(job)
            session.commit()
            session.refresh(job)
            return job

    def finish(self, job_id: int, outcome: str | None = None) -> Job:
        """The attempt succeeded: done, with what it did."""

        def done(job: Job) -> None:
            job.state, job.outcome, job.last_error = JobState.DONE, outcome, None

        return self._end(job_id, done)

    def fail(self, job_id: int, error: str, backoff: Callable[[int], timedelta] | None) -> Job:
        """The attempt failed: pending again after ``backoff(attempts)`` while attempts remain,
        else (or with no backoff: a failure that would recur) dead-lettered."""

        def failed(job: Job) -> None:
            job.last_error, job.outcome = error, None
            if backoff is not None and job.attempts < job.max_attempts:
                job.state, job.next_attempt_at = JobState.PENDING, utcnow() + backoff(job.attempts)
            else:
                job.state = JobState.FAILED

        return self._end(job_id, failed)

    def requeue(self, job_id: int) -> None:
        """A running job goes back to pending with no attempt counted (its worker was stopped
        for another job's fault, or is shutting down)."""
        with self.app.session() as session:
            session.exec(  # type: ignore[call-overload]
                update(Job)
                .where(Job.id == job_id, Job.state == JobState.RUNNING)
                .values(state=JobState.PENDING, lease_owner=None, lease_until=None)
            )
            session.commit()

    def retry(self, job_id: int) -> Job:
        """A dead-lettered (or pending) job becomes pending now, with a fresh set of attempts."""
        with self.app.session() as session:
            job = session.get(Job, job_id)
            if job is None or job.kind != self.kind:
                raise NotFound(f"no {self.kind.value} job {job_id}")
            if job.state not in (JobState.FAILED, JobState.PENDING):
                raise NotFound(
                    f"{self.kind.value} job {job_id} is {job.state.value}; "
                    "only failed or pending jobs are retried"
                )
            job.state, job.attempts, job.next_attempt_at = JobState.PENDING, 0, utcnow()
            session.add(job)
            session.commit()
            return job

    def release_this_host(self) -> int:
        """Running jobs claimed by earlier processes of this host (they died with it) go back to
        pending at once, without waiting out their leases; return how many. Called at start,
        before any worker of this host claims; jobs other machines hold are left to their leases."""
        with self.app.session() as session:
            result = session.exec(  # type: ignore[call-overload]
                update(Job)
                .where(Job.kind == self.kind, Job.state == JobState.RUNNING)
                .where(or_(Job.lease_owner.is_(None), Job.lease_owner.startswith(f"{_HOST}:")))  # type: ignore[union-attr]
                .values(state=JobState.PENDING, lease_owner=None, lease_until=None)
            )
            session.commit()
            return result.rowcount
