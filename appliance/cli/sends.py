"""``appliance send`` and ``appliance sends``: files through the send queue, and the queue itself."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli.common import ApplianceGroup, emit_rows, home_option, open_home
from appliance.pipeline import sending
from appliance.storage.writer import ObjectWriter
from dicom_gateway.errors import RejectedInstance
from dicom_gateway.received import instance_from_part10


def _dicom_files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return files


@click.command()
@home_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--to", "destination", required=True, help="destination name")
def send(home: str | None, paths: tuple[str, ...], destination: str) -> None:
    """Send DICOM files to a destination through the persistent, retrying send queue."""
    app = open_home(home)
    index = ObjectWriter(app)
    try:
        pks = []
        for path in _dicom_files(paths):
            try:
                instance = instance_from_part10(path.read_bytes(), "CLI", app.settings.dicom.ae_title)
            except RejectedInstance as exc:
                raise click.ClickException(f"{path}: {exc.comment}") from exc
            pks.append(index.store(instance))
    finally:
        index.close()
    job = sending.enqueue(app, destination, pks)
    job = sending.attempt(app, job.id)
    if job.state == "done":
        click.echo(f"sent {len(pks)} instance(s) to {destination} (job {job.id})")
        return
    click.echo(
        f"attempt {job.attempts} of job {job.id} failed: {job.last_error}; "
        + (
            f"it stays queued and a running appliance retries it from {job.next_attempt_at:%H:%M:%S} UTC"
            if job.state == "pending"
            else "no attempts left; see 'appliance sends list' and 'appliance sends retry'"
        ),
        err=True,
    )


@click.group(cls=ApplianceGroup)
def sends() -> None:
    """The send queue: list jobs, retry failed ones."""


@sends.command("list")
@home_option
@click.option("--json", "as_json", is_flag=True)
def sends_list(home: str | None, as_json: bool) -> None:
    app = open_home(home)
    queue = sending.send_queue(app)
    rows = [
        {
            "job": job.id,
            "destination": (payload := queue.payload(job)).destination,
            "instances": len(payload.instances),
            "state": job.state.value,
            "attempts": job.attempts,
            "next_attempt": job.next_attempt_at.isoformat(timespec="seconds"),
            "last_error": job.last_error or "",
        }
        for job in sending.list_jobs(app)
    ]
    emit_rows(
        rows, as_json, ["job", "destination", "instances", "state", "attempts", "next_attempt", "last_error"]
    )


@sends.command("retry")
@home_option
@click.argument("job_id", type=int)
def sends_retry(home: str | None, job_id: int) -> None:
    app = open_home(home)
    job = sending.retry(app, job_id)
    click.echo(f"job {job.id} is pending again")
