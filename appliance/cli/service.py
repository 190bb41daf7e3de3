"""``appliance init`` and ``appliance serve``: make a home, run the appliance in it."""

from __future__ import annotations

import click

from appliance import home as home_module
from appliance.cli.common import home_option, open_home
from appliance.config import resolve_home
from appliance.runtime import logs
from appliance.server import serve as serve_appliance


@click.command()
@home_option
def init(home: str | None) -> None:
    """Create an appliance home: config, database, store, and a new key-encryption key."""
    path = resolve_home(home)
    for line in home_module.init_home(path):
        click.echo(f"created {line}")
    click.echo(f"appliance home ready at {path}. Next:")
    click.echo(f"  appliance sources add NAME --ae CALLING_AE --host HOST --home {path}   # who may send")
    click.echo(f"  appliance destinations add NAME --ae AE --host HOST --port PORT [--results] --home {path}")
    click.echo(f"  appliance serve --home {path}   # settings: {path / 'appliance.toml'}")


@click.command()
@home_option
@click.option("--dicom-port", type=int, help="DICOM port (default: dicom.port in the config)")
@click.option("--http-port", type=int, help="HTTP port (default: http.port in the config)")
def serve(home: str | None, dicom_port: int | None, http_port: int | None) -> None:
    """Run the DICOM gateway, the workers and the HTTP server until SIGTERM or Ctrl-C."""
    app = open_home(home)
    logs.configure(app.settings.log_path, app.settings.log_level, rotates=True)
    serve_appliance(app, dicom_port, http_port)
