"""What every command shares: the --home option, opening the appliance, printing tables."""

from __future__ import annotations

import getpass
import json
from collections.abc import Sequence
from typing import Any

import click

from appliance.config import HOME_ENV, resolve_home
from appliance.context import Appliance, open_appliance
from appliance.errors import ApplianceError

home_option = click.option(
    "--home",
    envvar=HOME_ENV,
    type=click.Path(file_okay=False),
    help=f"appliance home (default: ${HOME_ENV})",
)


def actor() -> str:
    return f"cli:{getpass.getuser()}"


def open_home(home: str | None) -> Appliance:
    """Open the appliance for this command; its audit log is flushed when the command ends."""
    try:
        app = open_appliance(resolve_home(home))
    except ApplianceError as exc:
        raise click.ClickException(str(exc)) from exc
    click.get_current_context().call_on_close(app.close)
    return app


class ApplianceGroup(click.Group):
    """A command group that reports the appliance's own errors as one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ApplianceError as exc:
            raise click.ClickException(str(exc)) from exc


def emit_rows(rows: Sequence[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    if as_json:
        click.echo(json.dumps(list(rows), indent=2, default=str))
        return
    if not rows:
        click.echo("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        click.echo("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))
