"""Series assembly: a series is complete after a quiet period; completion becomes a durable job.

The state is in the ``series`` table (``state``, ``last_received_at``), so a restart resumes
assembly where it stopped. Completion is a conditional update in the same transaction as the job
insert: an instance that arrives meanwhile keeps the series receiving, and no job is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import Series, SeriesState, Study, utcnow
from appliance.jobs.payloads import SeriesComplete
from appliance.jobs.queue import JobQueue
from appliance.runtime.periodic import NextPassIn, Periodic

log = logging.getLogger(__name__)


def complete_quiet_series(app: Appliance) -> list[int]:
    """Mark every series quiet for ``quiet_seconds`` complete; return their ids."""
    cutoff = utcnow() - timedelta(seconds=app.settings.assembly.quiet_seconds)
    completed: list[int] = []
    queue = JobQueue(app, SeriesComplete)
    with app.session() as session:
        candidates = session.exec(
            select(Series, Study.study_uid)
            .join(Study, Study.id == Series.study_pk)
            .where(Series.state == SeriesState.RECEIVING, Series.last_received_at <= cutoff)
        ).all()
        for series, study_uid in candidates:
            result = session.exec(  # type: ignore[call-overload]
                update(Series)
                .where(
                    Series.id == series.id,
                    Series.state == SeriesState.RECEIVING,
                    Series.last_received_at <= cutoff,
                )
                .values(state=SeriesState.COMPLETE, completed_at=utcnow())
            )
            if result.rowcount != 1:
                continue
            payload = SeriesComplete(
                series_pk=series.id,
                series_uid=series.series_uid,
                study_uid=study_uid,
                called_ae=series.called_ae,
                instance_count=series.instance_count,
            )
            queue.add(session, payload, app.settings.inference.max_attempts)
            completed.append(series.id)
        session.commit()
    for series_id in completed:
        log.info("series %s complete", series_id)
    return completed


def receiving_series(app: Appliance) -> dict[int, datetime]:
    """Series still receiving: id -> when their last instance arrived (UTC)."""
    with app.session() as session:
        rows = session.exec(
            select(Series.id, Series.last_received_at).where(Series.state == SeriesState.RECEIVING)
        ).all()
    # the database may hand back naive datetimes; they are stored in UTC
    return {int(pk): at if at.tzinfo else at.replace(tzinfo=UTC) for pk, at in rows}  # type: ignore[arg-type]


def series_assembler(app: Appliance, on_complete: Callable[[], None] | None = None) -> Periodic:
    """Completes quiet series; ``on_complete`` is called after a pass that completed any.

    The next pass runs when the earliest receiving series would complete (a new instance only
    moves that later), or after ``poll_seconds`` if that is sooner.
    """
    quiet = app.settings.assembly.quiet_seconds

    def step(_stop: object) -> NextPassIn:
        if complete_quiet_series(app) and on_complete is not None:
            on_complete()
        now = utcnow()
        due = [(at - now).total_seconds() + quiet for at in receiving_series(app).values()]
        return NextPassIn(min(due, default=quiet))

    return Periodic("assembler", app.settings.assembly.poll_seconds, step)
