"""``appliance datasets``: de-identified, signed, versioned releases to a research workspace."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date, datetime

import click

from anonymizer.release.dsse import verify
from appliance.cli.common import ApplianceGroup, actor, emit_rows, home_option, json_option, open_home
from appliance.errors import NotFound
from appliance.research import requests as release_requests
from appliance.research.releases import Releaser, export_public_pem, export_signing_key, list_releases
from appliance.research.selection import RESULTS, ReleaseCriteria


def _day(_: click.Context, __: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise click.BadParameter(f"{value!r}: write the date as YYYY-MM-DD") from None


@click.group(cls=ApplianceGroup)
def datasets() -> None:
    """Dataset releases for researchers: release, list, show, signing-key, requests, run-request."""


@datasets.command("release")
@home_option
@click.argument("name")
@click.option("--to", "workspace", required=True, help="the workspace (see `appliance workspaces list`)")
@click.option("--modality", "modalities", multiple=True, help="only series of this modality (repeatable)")
@click.option("--study", "studies", multiple=True, help="only this study (Study Instance UID; repeatable)")
@click.option("--since", callback=_day, help="studies on or after this date (YYYY-MM-DD)")
@click.option("--until", callback=_day, help="studies on or before this date (YYYY-MM-DD)")
@click.option(
    "--profile", default=None, help="de-identification profile (default: deidentify.default_profile)"
)
@click.option(
    "--with-results",
    type=click.Choice(RESULTS),
    default="none",
    show_default=True,
    help="the AI SEG/SR of the released studies: all, only those clinicians accepted, or none",
)
@click.option(
    "--workers", type=click.IntRange(min=0), default=0, help="de-identifying processes (0: one per CPU)"
)
@click.option(
    "--json", "as_json", is_flag=True, help='print {"name","version","instances","quarantined","manifest"}'
)
def datasets_release(
    home: str | None,
    name: str,
    workspace: str,
    modalities: tuple[str, ...],
    studies: tuple[str, ...],
    since: date | None,
    until: date | None,
    profile: str | None,
    with_results: str,
    workers: int,
    as_json: bool,
) -> None:
    """Release NAME's next version (or finish an interrupted one) from the instances that match now.

    Held-out studies are left out (and one named with --study is refused). Every instance is
    de-identified, checked by the PHI gate and uploaded under its SHA-256; the signed manifest goes
    last. Interrupted, the same command finishes the same version."""
    app = open_home(home)
    criteria = ReleaseCriteria(
        modalities=modalities,
        studies=studies,
        since=since,
        until=until,
        profile=profile or app.settings.deidentify.default_profile,
        with_results=with_results,
    )
    summary = Releaser(app, actor(), workers).release(name, workspace, criteria)
    if as_json:
        keys = ("name", "version", "instances", "quarantined", "manifest")
        click.echo(json.dumps({key: asdict(summary)[key] for key in keys}))
        return
    quarantined = sum(summary.quarantined.values())
    click.echo(
        f"{name} v{summary.version}{' (resumed)' if summary.resumed else ''}: {summary.instances} instances "
        f"({summary.uploaded} uploaded, {summary.present} already there), {quarantined} quarantined, "
        f"{summary.excluded_held_out} held-out studies left out"
    )
    for reason, count in sorted(summary.quarantined.items()):
        click.echo(f"  quarantined x{count}: {reason}")
    click.echo(f"manifest: {summary.manifest} (sha256 {summary.manifest_sha256})")


@datasets.command("list")
@home_option
@json_option
def datasets_list(home: str | None, as_json: bool) -> None:
    """Every version of every dataset, with its state and manifest."""
    app = open_home(home)
    rows = [
        {
            "name": r.name,
            "version": r.version,
            "state": r.state.value,
            "workspace": r.workspace,
            "created_at": r.created_at,
            "manifest": r.manifest_url or "",
        }
        for r in list_releases(app)
    ]
    emit_rows(rows, as_json, ["name", "version", "state", "workspace", "created_at", "manifest"])


@datasets.command("show")
@home_option
@click.argument("name")
@click.option("--version", "version", type=int, help="the version (default: the newest)")
def datasets_show(home: str | None, name: str, version: int | None) -> None:
    """The signed statement of a version: its policy, counts and files (as JSON)."""
    app = open_home(home)
    releases = [r for r in list_releases(app, name) if version is None or r.version == version]
    if not releases:
        raise NotFound(
            f"no release {name}" + (f" v{version}" if version else "") + " (see `appliance datasets list`)"
        )
    row = releases[-1]
    if row.envelope is None:
        raise NotFound(f"{name} v{row.version} is not sealed yet ({row.state.value}): finish it first")
    statement = json.loads(verify(row.envelope, [export_signing_key(app).public_key()]))
    shown = {"state": row.state.value, "manifest": row.manifest_url, "manifest_sha256": row.manifest_digest}
    click.echo(json.dumps({**shown, "statement": statement}, indent=2))


@datasets.command("signing-key")
@home_option
def datasets_signing_key(home: str | None) -> None:
    """The PEM public key that verifies this appliance's releases (give it to researchers)."""
    click.echo(export_public_pem(open_home(home)), nl=False)


@datasets.command("requests")
@home_option
@json_option
def datasets_requests(home: str | None, as_json: bool) -> None:
    """Researchers' release requests (the datasets page), newest first, with their state."""
    rows = [
        {"id": r.id, "name": r.name, "workspace": r.workspace, "by": r.requested_by, "state": r.state.value,
         "decided_by": r.decided_by or "", "version": r.version or "", "note": r.note or ""}
        for r in release_requests.listed(open_home(home))
    ]  # fmt: skip
    emit_rows(rows, as_json, ["id", "name", "workspace", "by", "state", "decided_by", "version", "note"])


@datasets.command("run-request")
@home_option
@click.argument("request_id", type=int)
@click.option(
    "--workers", type=click.IntRange(min=0), default=0, help="de-identifying processes (0: one per CPU)"
)
def datasets_run_request(home: str | None, request_id: int, workers: int) -> None:
    """Release what approved request N asked for (the console starts this on approval); run again
    after a failure or an interruption, it resumes the same version."""
    row = release_requests.fulfil(open_home(home), request_id, workers)
    click.echo(f"request {row.id}: {row.name} v{row.version} released")
