"""``appliance models``: trust publishers, import signed bundles, list, activate, retire."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.admin import model_registry as registry
from appliance.cli.common import ApplianceGroup, actor, emit_rows, home_option, json_option, open_home


@click.group(cls=ApplianceGroup)
def models() -> None:
    """Signed MONAI bundles: staged, active (one per name) or retired."""


@models.command("trust")
@home_option
@click.argument("publisher")
@click.argument("public_key", type=click.Path(exists=True, dir_okay=False))
def models_trust(home: str | None, publisher: str, public_key: str) -> None:
    """Trust PUBLISHER's Ed25519 public key (PEM) for signing bundles."""
    registry.trust_publisher(open_home(home), actor(), publisher, Path(public_key))
    click.echo(f"publisher {publisher} trusted")


@models.command("import")
@home_option
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
def models_import(home: str | None, bundle: str) -> None:
    """Verify and import a signed bundle folder (staged until activated)."""
    model = registry.import_bundle(open_home(home), actor(), Path(bundle))
    click.echo(f"imported {model.name} {model.version} from {model.publisher} (staged)")


@models.command("list")
@home_option
@json_option
def models_list(home: str | None, as_json: bool) -> None:
    """Imported model versions, their state (staged, active, retired) and publisher."""
    rows = [m.model_dump(exclude={"id"}) for m in registry.list_models(open_home(home))]
    emit_rows(rows, as_json, ["name", "version", "state", "publisher", "imported_at"])


@models.command("activate")
@home_option
@click.argument("name")
@click.argument("version")
def models_activate(home: str | None, name: str, version: str) -> None:
    """Make this version the one its routing rules run (the previous active one is retired)."""
    registry.activate(open_home(home), actor(), name, version)
    click.echo(f"{name} {version} is active")


@models.command("retire")
@home_option
@click.argument("name")
@click.argument("version")
def models_retire(home: str | None, name: str, version: str) -> None:
    """Stop running this version; its results stay."""
    registry.retire(open_home(home), actor(), name, version)
    click.echo(f"{name} {version} retired")
