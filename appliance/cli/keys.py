"""``appliance keys``: the key-encryption keys: list, rotate, rewrap, retire."""

from __future__ import annotations

import click

from appliance.cli.common import ApplianceGroup, actor, emit_rows, home_option, json_option, open_home
from appliance.security import rotation


@click.group(cls=ApplianceGroup)
def keys() -> None:
    """Key-encryption key: list, rotate, rewrap, retire."""


@keys.command("list")
@home_option
@json_option
def keys_list(home: str | None, as_json: bool) -> None:
    """KEKs, which one is active, and how many data keys each wraps."""
    app = open_home(home)
    in_use = rotation.keys_in_use(app)
    rows = [
        {"kek": kid, "active": kid == app.keyring.active_id, "wraps": in_use.get(kid, 0)}
        for kid in app.keyring.ids
    ]
    emit_rows(rows, as_json, ["kek", "active", "wraps"])


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
