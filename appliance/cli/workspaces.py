"""``appliance workspaces``: where dataset releases go."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli.common import ApplianceGroup, actor, emit_rows, home_option, json_option, open_home
from appliance.db.tables import WorkspaceKind
from appliance.errors import ConfigError
from appliance.research import workspaces as spaces


@click.group(cls=ApplianceGroup)
def workspaces() -> None:
    """Research workspaces: a folder, an S3 bucket, or a research PACS over DICOMweb."""


@workspaces.command("add")
@home_option
@click.argument("name")
@click.option(
    "--s3", "s3_url", metavar="s3://BUCKET/PREFIX", help="an S3 bucket (AWS, MinIO, ...) and prefix"
)
@click.option("--dicomweb", "dicomweb_url", metavar="URL", help="a research PACS's DICOMweb root (STOW-RS)")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), help="a folder")
@click.option(
    "--endpoint", metavar="URL", help="S3 endpoint of a server other than AWS (MinIO: http://host:9000)"
)
@click.option("--region", help="S3 region (default us-east-1)")
@click.option(
    "--credentials-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="AWS credentials file (mode 0600) whose [default] keys are kept encrypted; "
    "without it, the standard AWS variables are read at each release",
)
def workspaces_add(
    home: str | None,
    name: str,
    s3_url: str | None,
    dicomweb_url: str | None,
    folder: Path | None,
    endpoint: str | None,
    region: str | None,
    credentials_file: Path | None,
) -> None:
    """Add a workspace: exactly one of --s3, --dicomweb, --dir."""
    given = [(WorkspaceKind.S3, s3_url), (WorkspaceKind.DICOMWEB, dicomweb_url), (WorkspaceKind.DIR, folder)]
    chosen = [(kind, str(url)) for kind, url in given if url]
    if len(chosen) != 1:
        raise ConfigError("give exactly one of --s3 s3://BUCKET/PREFIX, --dicomweb URL, --dir PATH")
    kind, url = chosen[0]
    app = open_home(home)
    row = spaces.add_workspace(app, actor(), name, kind, url, endpoint, region, credentials_file)
    click.echo(
        f"workspace {name} ({row.kind.value} {row.url}) added; `appliance workspaces check {name}` tries it"
    )


@workspaces.command("list")
@home_option
@json_option
def workspaces_list(home: str | None, as_json: bool) -> None:
    """The workspaces, with their kind and URL (never their credentials)."""
    app = open_home(home)
    rows = [
        {
            "name": w.name,
            "kind": w.kind.value,
            "url": w.url,
            "endpoint": w.endpoint or "",
            "credentials": "kept encrypted" if w.credentials_enc else "from the environment",
        }
        for w in spaces.list_workspaces(app)
    ]
    emit_rows(rows, as_json, ["name", "kind", "url", "endpoint", "credentials"])


@workspaces.command("check")
@home_option
@click.argument("name")
def workspaces_check(home: str | None, name: str) -> None:
    """Reach the workspace with its credentials, and list it."""
    app = open_home(home)
    click.echo(f"workspace {name} answers: {spaces.check_workspace(app, name)}")


@workspaces.command("remove")
@home_option
@click.argument("name")
def workspaces_remove(home: str | None, name: str) -> None:
    """Forget a workspace (what it holds stays there)."""
    app = open_home(home)
    spaces.remove_workspace(app, actor(), name)
    click.echo(f"workspace {name} removed")
