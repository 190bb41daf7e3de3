"""``appliance jobs``: the inference jobs (one per complete series) and what became of each."""

from __future__ import annotations

import click

from appliance.cli.common import emit_rows, home_option, json_option, open_home
from appliance.jobs.payloads import SeriesComplete
from appliance.jobs.queue import JobQueue


@click.command()
@home_option
@json_option
def jobs(home: str | None, as_json: bool) -> None:
    """List inference jobs: state, attempts, outcome (results or why no model ran) and last error."""
    app = open_home(home)
    queue = JobQueue(app, SeriesComplete)
    rows = [
        {
            "id": job.id,
            "series_uid": queue.payload(job).series_uid,
            "state": job.state.value,
            "attempts": job.attempts,
            "outcome": job.outcome or "",
            "last_error": job.last_error or "",
        }
        for job in queue.all()
    ]
    emit_rows(rows, as_json, ["id", "series_uid", "state", "attempts", "outcome", "last_error"])
