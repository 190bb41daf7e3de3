"""``research``: list, pull and verify the dataset releases in a research workspace; train, sign
and submit a candidate model."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from anonymizer.errors import AnonymizerError
from anonymizer.release.manifest import verify_manifest
from anonymizer.release.stores import open_store
from models.errors import ModelError
from workspace.errors import ResearchError
from workspace.locations import parse_release


class _Group(click.Group):
    """Errors the research side expects are one line and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (ResearchError, AnonymizerError, ModelError) as exc:
            raise click.ClickException(str(exc)) from exc


def _trusted(path: Path) -> list[Ed25519PublicKey]:
    try:
        key = load_pem_public_key(path.read_bytes())
    except (ValueError, TypeError):
        raise ResearchError(
            f"{path} is not a PEM public key: get it with `appliance datasets signing-key`"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ResearchError(f"{path} is not an Ed25519 key: releases are signed with Ed25519")
    return [key]


trust_option = click.option(
    "--trust",
    "trust",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the appliance's release-signing public key (PEM, from `appliance datasets signing-key`)",
)
endpoint_option = click.option("--endpoint", metavar="URL", help="S3 endpoint of a server other than AWS")


@click.group(cls=_Group)
@click.version_option(package_name="imaging-appliance", prog_name="research")
def research() -> None:
    """The research workspace: dataset releases from the appliance, verified and ready for MONAI."""


@research.command("ls")
@click.argument("url")
@endpoint_option
@click.option(
    "--trust", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="also verify each"
)
def ls(url: str, endpoint: str | None, trust: Path | None) -> None:
    """The datasets and versions at a workspace URL (s3://BUCKET/PREFIX or a folder)."""
    store = open_store(url, endpoint)
    keys = [k for k in store.keys("datasets/") if k.endswith("/manifest.dsse.json")]
    if not keys:
        click.echo("(no release)")
    for key in sorted(keys, key=lambda k: (k.split("/")[1], int(k.split("/")[2][1:]))):
        _, name, version, _ = key.split("/")
        line = f"{url.rstrip('/')}/{name}/{version}"
        if trust is not None:
            manifest = verify_manifest(store.get(key), _trusted(trust))
            line += f"  {manifest.counts['instances']} instances, created {manifest.created}, verified"
        click.echo(line)


@research.command("pull")
@click.argument("release_url", metavar="URL/NAME/vN")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@trust_option
@endpoint_option
@click.option("--validation", default=0.2, show_default=True, help="share of patients for validation")
def pull_command(
    release_url: str, folder: Path, trust: Path, endpoint: str | None, validation: float
) -> None:
    """Verify and download a release into FOLDER, then write its NIfTI volumes and datalist.json.

    Interrupted, the same command resumes: files already there with the right hash stay."""
    from workspace.datalist import DATALIST, VolumeWriter
    from workspace.pull import fetch_manifest, pull

    address = parse_release(release_url)
    trusted = _trusted(trust)

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            click.echo(f"\rpulled {done}/{total}", nl=False, err=True)

    with VolumeWriter(folder, validation) as volumes:  # first: its worker starts beside what follows
        store = open_store(address.workspace, endpoint)
        envelope, manifest = fetch_manifest(store, address, trusted)
        order = volumes.plan(manifest)
        downloaded = pull(store, folder, envelope, manifest, order, volumes.ready, progress)
        datalist = volumes.finish()
    click.echo(
        f"{manifest.name} v{manifest.version}: {len(manifest.files)} files verified "
        f"({downloaded} downloaded); "
        f"{len(datalist['training'])} training and {len(datalist['validation'])} validation volumes "
        f"in {folder / DATALIST}"
    )


@research.command("verify")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@trust_option
def verify_command(folder: Path, trust: Path) -> None:
    """Re-check a pulled copy: the signature, every file's hash, nothing missing or added."""
    from workspace.pull import verify_copy

    manifest = verify_copy(folder, _trusted(trust))
    click.echo(f"{manifest.name} v{manifest.version}: signature and {len(manifest.files)} files verified")


@research.command("train")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--bundle", "bundle", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="the bundle to train from (its configs/train.json and current weights)",
)  # fmt: skip
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="a new folder for the candidate bundle")  # fmt: skip
@trust_option
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="default: cuda when there is one")
@click.option("--version", "version", help="the candidate's version (default: the next minor version)")
@click.option(
    "--tracking", metavar="URI", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)"
)
def train_command(
    dataset_dir: Path, bundle: Path, out: Path, trust: Path, epochs: int, seed: int,
    device: str | None, version: str | None, tracking: str | None,
) -> None:  # fmt: skip
    """Train BUNDLE on a pulled release (DATASET_DIR) into a candidate version with its lineage."""
    import torch

    from models.training.workflow import TrainingSettings
    from workspace.tracking import tracking_uri
    from workspace.train import train_candidate

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    settings = TrainingSettings(dataset_dir, epochs, seed, device)
    lineage, run, run_id = train_candidate(
        dataset_dir, bundle, out, _trusted(trust), settings, tracking_uri(tracking), version
    )
    best = f"; best {run.key_metric} {run.best:.4f}" if run.best is not None else ""
    click.echo(
        f"candidate {lineage.parent.name} in {out}: trained {epochs} epochs on {lineage.release.name} "
        f"v{lineage.release.version} ({run.cases.get('training', 0)} training, "
        f"{run.cases.get('validation', 0)} validation cases) in {run.seconds:.0f} s{best}; "
        f"MLflow run {run_id}"
    )


@research.command("keygen")
@click.argument("key", type=click.Path(dir_okay=False, path_type=Path))
def keygen_command(key: Path) -> None:
    """Make a publisher key: KEY (private, mode 0600) and KEY's .pub (for `appliance models trust`)."""
    from workspace.publish import keygen

    public = keygen(key)
    click.echo(f"private key {key}; public key {public} (give it to the appliance's admin)")


@research.command("sign")
@click.argument("candidate", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--key", "key", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--publisher", help="the publisher's name the appliance trusts (default: the key file's name)")
def sign_command(candidate: Path, key: Path, publisher: str | None) -> None:
    """Sign a candidate bundle: manifest.json (every file's SHA-256) and manifest.sig."""
    from workspace.publish import sign

    manifest = sign(candidate, key, publisher or key.stem)
    click.echo(
        f"signed {manifest.name} {manifest.version} as {manifest.publisher} ({len(manifest.files)} files)"
    )


@research.command("submit")
@click.argument("candidate", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("url")
@endpoint_option
def submit_command(candidate: Path, url: str, endpoint: str | None) -> None:
    """Put a signed candidate in the model inbox of the workspace at URL (s3://BUCKET/PREFIX or a folder)."""
    from workspace.publish import submit

    prefix = submit(candidate, open_store(url, endpoint))
    click.echo(
        f"submitted to {url.rstrip('/')}/{prefix}: the appliance imports it with `appliance models fetch`"
    )


def main() -> None:
    """The console script; at exit the objects are left to the operating system, as the appliance's
    (the collector's last pass cost a pull a third of a second)."""
    try:
        research()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
