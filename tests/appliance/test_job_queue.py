"""The one job queue: claims under a lease, backoff, dead-letter, requeue, typed payloads; on SQLite
here, and on PostgreSQL (row locks skipped) in the slow test."""

from __future__ import annotations

import os
import socket
import threading
from datetime import timedelta

import pytest
from pydantic import ValidationError

from appliance.context import open_appliance
from appliance.db.tables import Job, JobState
from appliance.jobs.payloads import SendInstances, SeriesComplete
from appliance.jobs.queue import JobQueue
from testbed.processes import PostgresProcess

LEASE = timedelta(minutes=5)


def _add(queue: JobQueue, count: int = 1, max_attempts: int = 3) -> list[int]:
    ids = []
    with queue.app.session() as session:
        for index in range(count):
            payload = SendInstances(destination=f"pacs{index}", instances=[index])
            job = queue.add(session, payload, max_attempts)
            session.flush()
            ids.append(job.id)
        session.commit()
    return ids


def _job(queue: JobQueue, job_id: int) -> Job:
    with queue.app.session() as session:
        job = session.get(Job, job_id)
    assert job is not None
    return job


@pytest.fixture
def queue(home):
    app = open_appliance(home)
    yield JobQueue(app, SendInstances)
    app.close()


def test_a_claimed_job_is_leased_to_its_claimer_and_typed(queue):
    [job_id] = _add(queue)
    claimed = queue.claim(LEASE)
    assert claimed is not None and claimed.id == job_id
    assert claimed.payload == SendInstances(destination="pacs0", instances=[0])
    assert queue.claim(LEASE) is None  # leased: nobody else gets it
    job = _job(queue, job_id)
    assert job.state == JobState.RUNNING and job.lease_owner == f"{socket.gethostname()}:{os.getpid()}"
    assert JobQueue(queue.app, SeriesComplete).claim(LEASE) is None  # another kind's queue


def test_a_job_added_under_a_lease_is_its_adders_until_the_lease_runs_out(queue):
    """``appliance send`` adds its job claimed and attempts it at once: a running appliance's send
    worker claiming in between made the command fail with "not pending"."""
    with queue.app.session() as session:
        job = queue.add(session, SendInstances(destination="pacs", instances=[1]), 3, lease=LEASE)
        session.commit()
        job_id = job.id
    assert queue.claim(LEASE) is None and queue.claim(LEASE, job_id=job_id) is None
    job = _job(queue, job_id)
    assert job.state == JobState.RUNNING and job.lease_owner == f"{socket.gethostname()}:{os.getpid()}"
    assert queue.finish(job_id).state == JobState.DONE


def test_a_job_whose_lease_ran_out_is_claimed_again(queue):
    [job_id] = _add(queue)
    assert queue.claim(timedelta(seconds=-1)) is not None  # its claimer "died": the lease is over
    again = queue.claim(LEASE)
    assert again is not None and again.id == job_id


def test_a_failed_attempt_backs_off_then_is_dead_lettered_when_out_of_attempts(queue):
    [job_id] = _add(queue, max_attempts=2)
    queue.claim(LEASE)
    job = queue.fail(job_id, "refused", lambda attempts: timedelta(hours=attempts))
    assert job.state == JobState.PENDING and job.attempts == 1 and job.lease_owner is None
    assert queue.claim(LEASE) is None  # not due for an hour
    queue.retry(job_id)  # an operator: due now, attempts afresh
    queue.claim(LEASE)
    queue.fail(job_id, "refused", lambda attempts: timedelta(0))
    queue.claim(LEASE)
    job = queue.fail(job_id, "refused again", lambda attempts: timedelta(0))
    assert job.state == JobState.FAILED and job.attempts == 2 and job.last_error == "refused again"
    assert queue.claim(LEASE) is None  # dead-lettered until retried


def test_a_failure_that_would_recur_is_dead_lettered_at_once(queue):
    [job_id] = _add(queue, max_attempts=5)
    queue.claim(LEASE)
    assert queue.fail(job_id, "bad series", None).state == JobState.FAILED


def test_requeue_counts_no_attempt_and_finish_records_the_outcome(queue):
    [job_id] = _add(queue)
    queue.claim(LEASE)
    queue.requeue(job_id)
    assert _job(queue, job_id).state == JobState.PENDING and _job(queue, job_id).attempts == 0
    queue.claim(LEASE)
    job = queue.finish(job_id, outcome="sent")
    assert (job.state, job.attempts, job.outcome, job.lease_until) == (JobState.DONE, 1, "sent", None)


def test_at_start_only_this_hosts_running_jobs_are_released(queue):
    mine, theirs = _add(queue, 2)
    queue.claim(LEASE, job_id=mine)
    queue.claim(LEASE, job_id=theirs)
    with queue.app.session() as session:
        job = session.get(Job, theirs)
        job.lease_owner = "another-host:1"  # type: ignore[union-attr]
        session.add(job)
        session.commit()
    assert queue.release_this_host() == 1
    assert _job(queue, mine).state == JobState.PENDING
    assert _job(queue, theirs).state == JobState.RUNNING  # left to its lease


def test_a_payload_of_the_wrong_shape_is_refused(queue):
    with pytest.raises(ValidationError):
        SendInstances.model_validate({"destination": "pacs", "instances": [1], "extra": True})
    with queue.app.session() as session:
        session.add(Job(kind=SendInstances.kind, payload={"destination": "pacs"}))
        session.commit()
    with pytest.raises(ValidationError):
        queue.claim(LEASE)


@pytest.mark.slow
def test_concurrent_claimers_on_postgresql_each_get_a_different_job(tmp_path, monkeypatch):
    from appliance.home import init_home

    server = PostgresProcess().start()
    try:
        monkeypatch.setenv("APPLIANCE_DATABASE_URL", server.url)
        init_home(tmp_path / "home")
        app = open_appliance(tmp_path / "home")
        try:
            queue = JobQueue(app, SendInstances)
            ids = _add(queue, 20)
            claimed: list[int] = []
            lock = threading.Lock()

            def claimer() -> None:
                while (job := queue.claim(LEASE)) is not None:
                    with lock:
                        claimed.append(job.id)

            threads = [threading.Thread(target=claimer) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        finally:
            app.close()
    finally:
        server.stop()
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
