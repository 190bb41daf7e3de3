"""``appliance models``: trust publishers, import signed bundles or fetch candidates from a workspace,
validate a candidate on the held-out set, promote, roll back, retire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from appliance.admin import model_registry as registry
from appliance.cli.common import ApplianceGroup, actor, emit_rows, home_option, json_option, open_home

if TYPE_CHECKING:
    from appliance.context import Appliance
    from appliance.db.tables import ModelValidation


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


@models.command("fetch")
@home_option
@click.argument("workspace")
def models_fetch(home: str | None, workspace: str) -> None:
    """Import the candidates submitted to WORKSPACE's model inbox (signature and lineage checked)."""
    from appliance.modelops.inbox import fetch

    results = fetch(open_home(home), actor(), workspace)
    if not results:
        click.echo(f"no candidate in {workspace}'s inbox")
    for result in results:
        click.echo(
            f"{result.name} {result.version}: {result.outcome}"
            + (f" ({result.detail})" if result.detail else "")
        )
    if any(r.outcome == "refused" for r in results):
        raise SystemExit(1)


@models.command("list")
@home_option
@json_option
def models_list(home: str | None, as_json: bool) -> None:
    """Imported model versions: state, publisher, training release, newest validation."""
    from appliance.modelops.reports import summary

    app = open_home(home)
    rows = []
    for model in registry.list_models(app):
        row = model.model_dump(exclude={"id", "path"})
        row["validation"] = summary(app, model.name, model.version)
        rows.append(row)
    emit_rows(
        rows, as_json, ["name", "version", "state", "publisher", "release", "validation", "imported_at"]
    )


def _print_report(app: Appliance, row: ModelValidation, as_json: bool, exit_on_fail: bool = False) -> None:
    """A kept validation or equivalence report, as JSON or readable; exit 1 after a failed one
    when asked (a validation or optimisation just run)."""
    from appliance.modelops import reports

    report = reports.opened(app, row)
    click.echo(json.dumps(report, indent=2) if as_json else reports.readable(report))
    if exit_on_fail and not row.passed:
        raise SystemExit(1)


@models.command("validate")
@home_option
@json_option
@click.argument("name")
@click.argument("version")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="default: cuda when there is one")
def models_validate(home: str | None, as_json: bool, name: str, version: str, device: str | None) -> None:
    """Validate VERSION against the active version on the labelled held-out cases (signed report)."""
    from appliance.modelops import validation

    app = open_home(home)
    row = validation.validate(app, actor(), name, version, device)
    _print_report(app, row, as_json, exit_on_fail=True)


@models.command("optimize")
@home_option
@json_option
@click.argument("name")
@click.argument("version")
@click.option("--backend", type=click.Choice(["onnxruntime", "tensorrt"]), default="onnxruntime",
              show_default=True, help="the derived version's runtime (tensorrt: on a CUDA GPU)")  # fmt: skip
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp32", show_default=True,
              help="int8: quantised, calibrated on the held-out series; fp16: TensorRT only")  # fmt: skip
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="default: cuda when there is one")
@click.option("--calibration", default="holdout", show_default=True, metavar="holdout|DATASET",
              help="int8's calibration: the held-out series, or a dataset release's series")  # fmt: skip
def models_optimize(
    home: str | None,
    as_json: bool,
    name: str,
    version: str,
    backend: str,
    precision: str,
    device: str | None,
    calibration: str,
) -> None:
    """Derive VERSION+BACKEND.PRECISION and check it against VERSION on the held-out series (a signed
    equivalence report; exit 1 when a class's labels differ beyond the protocol's threshold)."""
    from appliance.modelops import optimize

    app = open_home(home)
    row = optimize.optimize(app, actor(), name, version, backend, precision, device, calibration)
    _print_report(app, row, as_json, exit_on_fail=True)


@models.command("report")
@home_option
@json_option
@click.argument("name")
@click.argument("version")
@click.option("--signed", is_flag=True, help="print the signed DSSE envelope instead")
def models_report(home: str | None, as_json: bool, name: str, version: str, signed: bool) -> None:
    """The newest validation report of VERSION (signature checked)."""
    from appliance.errors import NotFound
    from appliance.modelops import reports

    app = open_home(home)
    found = reports.reports(app, name, version)
    if not found:
        raise NotFound(
            f"{name} {version} has no validation report: run `appliance models validate {name} {version}`"
        )
    if signed:
        click.echo(found[0].envelope.decode())
        return
    _print_report(app, found[0], as_json)


@models.command("promote")
@home_option
@click.argument("name")
@click.argument("version")
@click.option("--override-reason", help="promote without a passing validation (audited as a Security Alert)")
def models_promote(home: str | None, name: str, version: str, override_reason: str | None) -> None:
    """Make VERSION the one its routing rules run, if its validation against the active version passed."""
    from appliance.modelops.promotion import promote

    promote(open_home(home), actor(), name, version, override_reason)
    click.echo(f"{name} {version} is active")


@models.command("rollback")
@home_option
@click.argument("name")
def models_rollback(home: str | None, name: str) -> None:
    """Return NAME to the version that was active before the current one."""
    from appliance.modelops.promotion import rollback

    model = rollback(open_home(home), actor(), name)
    click.echo(f"{name} {model.version} is active again")


@models.command("shadow")
@home_option
@click.argument("name")
@click.argument("version")
@click.option("--series", type=int, help="stop after this many series")
@click.option("--hours", type=float, help="stop after this many hours")
def models_shadow(home: str | None, name: str, version: str, series: int | None, hours: float | None) -> None:
    """Run staged VERSION beside the active version on every series; its results are measured, never sent."""
    from appliance.modelops import shadow

    shadow.start(open_home(home), actor(), name, version, series, hours)
    click.echo(f"{name} {version} runs in shadow from the next series; see `appliance models shadow-report`")


@models.command("shadow-stop")
@home_option
@click.argument("name")
def models_shadow_stop(home: str | None, name: str) -> None:
    """Stop the version of NAME running in shadow."""
    from appliance.modelops import shadow

    run = shadow.stop(open_home(home), actor(), name)
    click.echo(f"{name} {run.version} no longer runs in shadow")


@models.command("shadow-report")
@home_option
@json_option
@click.argument("name")
@click.argument("version")
def models_shadow_report(home: str | None, as_json: bool, name: str, version: str) -> None:
    """Agreement with the active version, failures and latency of VERSION's shadow runs."""
    from appliance.modelops import shadow

    found = shadow.report(open_home(home), name, version)
    click.echo(json.dumps(found, indent=2) if as_json else shadow.readable(found))


@models.command("retire")
@home_option
@click.argument("name")
@click.argument("version")
def models_retire(home: str | None, name: str, version: str) -> None:
    """Stop running this version; its results stay."""
    registry.retire(open_home(home), actor(), name, version)
    click.echo(f"{name} {version} retired")
