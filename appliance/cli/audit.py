"""``appliance audit``: list (audited itself), verify (public key only), prove."""

from __future__ import annotations

import base64
import csv
import json
import sys
from datetime import UTC
from pathlib import Path

import click
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from appliance.admin.audit_reading import COLUMNS, inclusion_proof, read_log, row_of
from appliance.cli.common import ApplianceGroup, actor, home_option, open_home
from appliance.config import load_settings, resolve_home
from appliance.context import SIGNING_PUBLIC_KEY
from audit.errors import AuditIntegrityError, WitnessError
from audit.events import Participant
from audit.log import CHECKPOINTS
from audit.reader import Filter
from audit.verify import verify_log

WITNESS_FAILED = 3  # exit status of `audit verify` when the witness is missing or older than a clean stop


@click.group(cls=ApplianceGroup)
def audit() -> None:
    """The encrypted, tamper-evident audit log."""


@audit.command("list")
@home_option
@click.option("--since", type=click.DateTime(), help="from this time (UTC)")
@click.option("--until", type=click.DateTime(), help="up to this time (UTC)")
@click.option("--who", help="user or AE title among the participants")
@click.option("--patient", "patient_id", help="patient ID")
@click.option("--study", "study_uid", help="Study Instance UID")
@click.option("--event", "event_id", help="DICOM event ID code, e.g. 110104")
@click.option("--outcome", type=int, help="0 success, 4 minor, 8 serious, 12 major failure")
@click.option("--json", "as_json", is_flag=True, help="one JSON array of the entries")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row")
def audit_list(home, since, until, who, patient_id, study_uid, event_id, outcome, as_json, as_csv) -> None:  # type: ignore[no-untyped-def]
    """Decrypt and list entries matching every filter given. The read is itself audited."""
    if as_json and as_csv:
        raise click.UsageError("--json and --csv together: choose one")
    app = open_home(home)
    wanted = Filter(
        since=since.replace(tzinfo=UTC) if since else None,
        until=until.replace(tzinfo=UTC) if until else None,
        who=who,
        patient_id=patient_id,
        study_uid=study_uid,
        event_id=event_id,
        outcome=outcome,
    )
    entries = read_log(app, Participant(actor(), is_requestor=True), wanted, "appliance audit list")
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    rows = [row_of(e) for e in entries]
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        return
    for row in rows:
        click.echo("  ".join(str(row[c]) for c in COLUMNS))


def _public_key(home: Path, key_file: str | None) -> Ed25519PublicKey:
    path = Path(key_file) if key_file else home / SIGNING_PUBLIC_KEY
    try:
        key = load_pem_public_key(path.read_bytes())
    except (ValueError, TypeError, OSError, UnsupportedAlgorithm) as exc:
        why = type(exc).__name__
        raise click.ClickException(
            f"{path} is not a PEM public key ({why}); give audit-signing-key.pub"
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise click.ClickException(
            f"{path} is a {type(key).__name__.removeprefix('_')}, not the Ed25519 key the log is signed "
            "with; give audit-signing-key.pub"
        )
    return key


@audit.command("verify")
@home_option
@click.option(
    "--checkpoint", "checkpoint_file", type=click.Path(exists=True), help="a checkpoint the auditor kept"
)
@click.option(
    "--public-key", "key_file", type=click.Path(exists=True), help="default: the home's audit-signing-key.pub"
)
@click.option(
    "--log-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="a copy of the home's audit/ folder, verified without a home (with --public-key and --witness)",
)
@click.option(
    "--witness",
    "witness_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="with --log-dir: the witness file",
)
@click.option("--json", "as_json", is_flag=True, help="print the result as one JSON object")
def audit_verify(
    home: str | None,
    checkpoint_file: str | None,
    key_file: str | None,
    log_dir: Path | None,
    witness_file: Path | None,
    as_json: bool,
) -> None:
    """Recompute the tree, check every checkpoint and the witness; needs no decryption key.

    An auditor holding a copy of the log folder, the witness and the public key verifies it
    with --log-dir, --witness and --public-key: no home and no appliance.toml."""
    if log_dir is not None:
        if key_file is None or witness_file is None:
            raise click.UsageError("--log-dir needs --public-key and --witness")
        directory, witness, public_key = log_dir, witness_file, _public_key(log_dir, key_file)
        origin = _origin_of(log_dir)
    else:
        path = resolve_home(home)
        settings = load_settings(path)
        directory, witness = settings.path(settings.audit.directory), settings.path(settings.audit.witness)
        public_key, origin = _public_key(path, key_file), settings.audit.origin
    held = Path(checkpoint_file).read_text() if checkpoint_file else None
    try:
        result = verify_log(directory, public_key, origin, witness, held)
    except WitnessError as exc:
        click.echo(f"Error: audit log verification FAILED (witness): {exc}", err=True)
        raise SystemExit(WITNESS_FAILED) from exc
    except AuditIntegrityError as exc:
        raise click.ClickException(f"audit log verification FAILED: {exc}") from exc
    root = base64.b64encode(result.root).decode()
    if as_json:
        click.echo(json.dumps({"verified": True, "entries": result.entries, "root": root,
                               "checkpoints": result.checkpoints, "witnessed": result.witnessed,
                               "extends_auditors_checkpoint": bool(held)}))  # fmt: skip
        return
    click.echo(
        f"audit log verified: {result.entries} entries, root {root}, "
        f"{result.checkpoints} checkpoints, {result.witnessed} witnessed"
        + (", and it extends the auditor's checkpoint" if held else "")
    )


def _origin_of(log_dir: Path) -> str:
    """The log's name, from its checkpoints' first line (each signature covers it)."""
    notes = sorted((log_dir / CHECKPOINTS).glob("*.note"))
    if not notes:
        raise click.ClickException(f"{log_dir} holds no signed checkpoint: is it a copy of an audit/ folder?")
    return notes[-1].read_text().split("\n", 1)[0]


@audit.command("prove")
@home_option
@click.argument("index", type=int)
def audit_prove(home: str | None, index: int) -> None:
    """Print an RFC 6962 inclusion proof of entry INDEX in the newest checkpoint, as JSON."""
    proof = inclusion_proof(load_settings(resolve_home(home)), index)
    click.echo(json.dumps(proof, indent=2))
