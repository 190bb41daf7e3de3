"""What every command shares: the --home option, opening the appliance, printing tables."""

from __future__ import annotations

import getpass
import importlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from anonymizer.errors import AnonymizerError
from appliance.config import HOME_ENV, resolve_home
from appliance.errors import ApplianceError

if TYPE_CHECKING:
    from appliance.context import Appliance

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
    from appliance.context import open_appliance  # the database and its models: only when a home opens

    try:
        app = open_appliance(resolve_home(home))
    except ApplianceError as exc:
        raise click.ClickException(str(exc)) from exc
    click.get_current_context().call_on_close(app.close)
    return app


class ApplianceGroup(click.Group):
    """A command group that reports the appliance's own errors, and the anonymizer's (releases),
    as one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ApplianceError, AnonymizerError) as exc:
            raise click.ClickException(str(exc)) from exc


class LazyGroup(ApplianceGroup):
    """A group whose commands are named ``"module:attribute"`` and imported when first asked for."""

    def __init__(self, *args: Any, commands_in: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands_in = commands_in

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.commands_in})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands_in and cmd_name not in self.commands:
            module, attribute = self.commands_in[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)


json_option = click.option("--json", "as_json", is_flag=True, help="print one JSON array, for scripts")


def _shown(value: Any) -> Any:
    """Times in ISO 8601 (seconds, with their offset) everywhere a command prints them."""
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else value


def emit_rows(rows: Sequence[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    rows = [{key: _shown(value) for key, value in row.items()} for row in rows]
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
