"""``appliance sources`` and ``appliance destinations``."""

from __future__ import annotations

import click

from appliance.admin import peers
from appliance.cli.common import ApplianceGroup, actor, emit_rows, home_option, json_option, open_home
from appliance.db.tables import Destination, Source
from appliance.pipeline.sending import echo_destination
from dicom_gateway.errors import GatewayError


@click.group(cls=ApplianceGroup)
def sources() -> None:
    """Peers allowed to send to the appliance (AE title + host, and TLS subject)."""


@sources.command("add")
@home_option
@click.argument("name")
@click.option("--ae", "ae_title", required=True, help="calling AE title of the peer")
@click.option("--host", required=True, help="IP address, CIDR network or host name of the peer")
@click.option("--tls-subject", help="client certificate subject or CN bound to it (default: CN = AE title)")
def sources_add(home: str | None, name: str, ae_title: str, host: str, tls_subject: str | None) -> None:
    """A peer allowed to send to this appliance: its calling AE title, from this host or network."""
    app = open_home(home)
    peers.add_source(app, actor(), name, ae_title, host, tls_subject)
    click.echo(f"source {name} ({ae_title}@{host}) added")


@sources.command("list")
@home_option
@json_option
def sources_list(home: str | None, as_json: bool) -> None:
    """The peers allowed to send, with their hosts and TLS subjects."""
    app = open_home(home)
    rows = [s.model_dump(exclude={"id"}) for s in peers.list_peers(app, Source)]
    emit_rows(rows, as_json, ["name", "ae_title", "host", "tls_subject"])


@sources.command("remove")
@home_option
@click.argument("name")
def sources_remove(home: str | None, name: str) -> None:
    """Stop accepting associations from this source (at its next association)."""
    app = open_home(home)
    peers.remove_peer(app, actor(), Source, name)
    click.echo(f"source {name} removed")


@click.group(cls=ApplianceGroup)
def destinations() -> None:
    """PACS and other AEs the appliance sends results to."""


@destinations.command("add")
@home_option
@click.argument("name")
@click.option("--ae", "ae_title", required=True, help="the destination's AE title (its called AE)")
@click.option("--host", required=True, help="its IP address or host name")
@click.option("--port", required=True, type=click.IntRange(1, 65535), help="its DICOM port")
@click.option("--tls", is_flag=True, help="connect with DICOM TLS (uses dicom.tls files)")
@click.option(
    "--results", is_flag=True, help="send it the inference results (SEG, SR); without it, it gets none"
)
def destinations_add(
    home: str | None, name: str, ae_title: str, host: str, port: int, tls: bool, results: bool
) -> None:
    """A peer to send to: with ``appliance send``, and with --results, the inference results."""
    app = open_home(home)
    peers.add_destination(app, actor(), name, ae_title, host, port, tls, results)
    click.echo(
        f"destination {name} ({ae_title}@{host}:{port}) added" + (", receives results" if results else "")
    )


@destinations.command("list")
@home_option
@json_option
def destinations_list(home: str | None, as_json: bool) -> None:
    """The peers this appliance sends to, and which receive the inference results."""
    app = open_home(home)
    rows = [d.model_dump(exclude={"id"}) for d in peers.list_peers(app, Destination)]
    emit_rows(rows, as_json, ["name", "ae_title", "host", "port", "tls", "results"])


@destinations.command("remove")
@home_option
@click.argument("name")
def destinations_remove(home: str | None, name: str) -> None:
    """Forget a destination (queued sends to it fail and stay listed)."""
    app = open_home(home)
    peers.remove_peer(app, actor(), Destination, name)
    click.echo(f"destination {name} removed")


@destinations.command("echo")
@home_option
@click.argument("name")
def destinations_echo(home: str | None, name: str) -> None:
    """C-ECHO a destination."""
    app = open_home(home)
    try:
        destination = echo_destination(app, name)
    except GatewayError as exc:
        raise click.ClickException(f"C-ECHO to {name} failed: {exc}") from exc
    click.echo(f"C-ECHO to {name} ({destination.ae_title}@{destination.host}:{destination.port}): success")
