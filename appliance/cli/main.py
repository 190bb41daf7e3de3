"""``appliance``: init, serve, keys, sources, destinations, send, sends, studies, models, jobs, anonymize."""

from __future__ import annotations

import os
from pathlib import Path

import click

from appliance import home as home_module
from appliance import logs, rotation, sending
from appliance.cli.anonymize import anonymize
from appliance.cli.audit import audit
from appliance.cli.common import ApplianceGroup, actor, emit_rows, home_option, open_home
from appliance.cli.jobs import jobs
from appliance.cli.models import models
from appliance.cli.peers import destinations, sources
from appliance.cli.studies import studies
from appliance.config import resolve_home
from appliance.ingest import InstanceIndex
from appliance.server import serve as serve_appliance
from dicom_gateway.errors import RejectedInstance
from dicom_gateway.received import instance_from_part10


@click.group(cls=ApplianceGroup)
def cli() -> None:
    """On-premises imaging appliance: encrypted DICOM ingest, inference, audit, research export."""
    os.umask(0o077)  # everything the appliance writes (database, logs, store) is private to it


@cli.command()
@home_option
def init(home: str | None) -> None:
    """Create an appliance home: config, database, store, and a new key-encryption key."""
    path = resolve_home(home)
    for line in home_module.init_home(path):
        click.echo(f"created {line}")
    click.echo(f"appliance home ready at {path}")


@cli.command()
@home_option
@click.option("--dicom-port", type=int, help="DICOM port (default: dicom.port in the config)")
@click.option("--http-port", type=int, help="HTTP port (default: http.port in the config)")
def serve(home: str | None, dicom_port: int | None, http_port: int | None) -> None:
    """Run the DICOM gateway, the workers and the HTTP server until SIGTERM or Ctrl-C."""
    app = open_home(home)
    logs.configure(app.settings.log_path, app.settings.log_level)
    serve_appliance(app, dicom_port, http_port)


@cli.group(cls=ApplianceGroup)
def keys() -> None:
    """Key-encryption key: list, rotate, rewrap, retire."""


@keys.command("list")
@home_option
def keys_list(home: str | None) -> None:
    """KEKs, which one is active, and how many data keys each wraps."""
    app = open_home(home)
    in_use = rotation.keys_in_use(app)
    rows = [
        {"kek": kid, "active": kid == app.keyring.active_id, "wraps": in_use.get(kid, 0)}
        for kid in app.keyring.ids
    ]
    emit_rows(rows, False, ["kek", "active", "wraps"])


@keys.command("rotate")
@home_option
def keys_rotate(home: str | None) -> None:
    """Make a new KEK active and re-wrap every data key under it (object data is not rewritten)."""
    app = open_home(home)
    new_id, changed = rotation.rotate(app, actor())
    click.echo(f"KEK {new_id} is active; {changed} data keys re-wrapped")


@keys.command("rewrap")
@home_option
def keys_rewrap(home: str | None) -> None:
    """Re-wrap every data key under the active KEK (after changing $APPLIANCE_KEK)."""
    app = open_home(home)
    click.echo(f"{rotation.rewrap_all(app)} data keys re-wrapped under {app.keyring.active_id}")


@keys.command("retire")
@home_option
@click.argument("kek_id")
def keys_retire(home: str | None, kek_id: str) -> None:
    """Delete an old KEK that no longer wraps any data key."""
    app = open_home(home)
    rotation.retire(app, actor(), kek_id)
    click.echo(f"KEK {kek_id} retired")


cli.add_command(sources)
cli.add_command(destinations)
cli.add_command(studies)
cli.add_command(audit)
cli.add_command(models)
cli.add_command(jobs)
cli.add_command(anonymize)


def _dicom_files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return files


@cli.command()
@home_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--to", "destination", required=True, help="destination name")
def send(home: str | None, paths: tuple[str, ...], destination: str) -> None:
    """Send DICOM files to a destination through the persistent, retrying send queue."""
    app = open_home(home)
    index = InstanceIndex(app)
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


@cli.group(cls=ApplianceGroup)
def sends() -> None:
    """The send queue: list jobs, retry failed ones."""


@sends.command("list")
@home_option
@click.option("--json", "as_json", is_flag=True)
def sends_list(home: str | None, as_json: bool) -> None:
    app = open_home(home)
    rows = [
        {
            "job": job.id,
            "destination": job.payload["destination"],
            "instances": len(job.payload["instances"]),
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


if __name__ == "__main__":
    cli()
