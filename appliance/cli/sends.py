"""``appliance send`` and ``appliance sends``: files through the send queue, and the queue itself."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from appliance.admin.peers import get_destination
from appliance.cli.common import ApplianceGroup, emit_rows, home_option, json_option, open_home
from appliance.pipeline import sending
from appliance.storage.writer import NewObject, ObjectWriter
from dicom_gateway.errors import RejectedInstance
from dicom_gateway.received import instance_from_part10


def _files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return files


@click.command()
@home_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--to", "destination", required=True, help="destination name (see 'appliance destinations list')"
)
def send(home: str | None, paths: tuple[str, ...], destination: str) -> None:
    """Send DICOM files to a destination through the persistent, retrying send queue.

    The destination is checked first; files that are not DICOM are skipped and listed. What is
    sent is stored (encrypted) as a complete series, never an inference job."""
    app = open_home(home)
    get_destination(app, destination)  # a destination that does not exist: one line, nothing stored
    index = ObjectWriter(app)
    pks, skipped = [], []
    try:
        files = _files(paths)
        with click.progressbar(files, label="storing", file=sys.stderr) as progress:
            for path in progress:
                try:
                    instance = instance_from_part10(path.read_bytes(), "CLI", app.settings.dicom.ae_title)
                except RejectedInstance as exc:
                    skipped.append(f"{path}: {exc.comment}")
                    continue
                pks.append(index.write(replace(NewObject.received(instance), complete_series=True)))
    finally:
        index.close()
    for line in skipped:
        click.echo(f"skipped {line}", err=True)
    if not pks:
        raise click.ClickException(f"none of the {len(files)} file(s) is a DICOM instance; nothing sent")
    job = sending.send_now(app, destination, pks)
    if job.state == "done":
        click.echo(f"sent {len(pks)} instance(s) to {destination} (job {job.id})")
        return
    click.echo(
        f"attempt {job.attempts} of job {job.id} failed: {job.last_error}; "
        + (
            f"it stays queued and a running appliance retries it from "
            f"{job.next_attempt_at.isoformat(timespec='seconds')}"
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
@json_option
def sends_list(home: str | None, as_json: bool) -> None:
    """Send jobs: destination, instances, state, attempts, next attempt, last error."""
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
    """Queue a failed send job again, with its attempts reset."""
    app = open_home(home)
    job = sending.retry(app, job_id)
    click.echo(f"job {job.id} is pending again")
