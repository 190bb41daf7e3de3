"""Durable jobs between stages: what every kind of job shares."""

from __future__ import annotations

from sqlalchemy import update

from appliance.context import Appliance
from appliance.db.tables import Job, JobKind, JobState


def release_running(app: Appliance, kind: JobKind) -> int:
    """Jobs of ``kind`` left running by a crash go back to pending; return how many.

    Called at start, before any worker runs: every stage is idempotent (C-STORE of the same
    instances, inference writing new results), so running a job again is safe.
    """
    with app.session() as session:
        result = session.exec(  # type: ignore[call-overload]
            update(Job).where(Job.kind == kind, Job.state == JobState.RUNNING).values(state=JobState.PENDING)
        )
        session.commit()
        return result.rowcount
