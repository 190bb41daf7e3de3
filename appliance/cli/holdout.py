"""``appliance holdout``: cases kept here to validate models, never released."""

from __future__ import annotations

import click

from appliance.cli.common import ApplianceGroup, actor, emit_rows, home_option, json_option, open_home
from appliance.errors import ConfigError
from appliance.research import holdout as held


@click.group(cls=ApplianceGroup)
def holdout() -> None:
    """The held-out set: studies and patients no release includes."""


@holdout.command("add")
@home_option
@click.option("--study", "study_uid", help="a study's Study Instance UID")
@click.option("--patient", "patient_id", help="a patient's ID: every study of theirs, now and later")
@click.option("--issuer", default="", help="the issuer of that patient ID, if the sources send one")
@click.option("--fraction", type=float, help="hold out this share of the stored studies (e.g. 0.2)")
@click.option("--seed", type=int, default=0, show_default=True, help="with --fraction: which share")
@click.option("--modality", help="with --fraction: only studies with a series of this modality")
def holdout_add(
    home: str | None,
    study_uid: str | None,
    patient_id: str | None,
    issuer: str,
    fraction: float | None,
    seed: int,
    modality: str | None,
) -> None:
    """Hold out one of: --study UID, --patient ID, --fraction F [--seed S] [--modality M]."""
    if sum(x is not None for x in (study_uid, patient_id, fraction)) != 1:
        raise ConfigError("give exactly one of --study UID, --patient ID, --fraction F")
    app = open_home(home)
    if study_uid:
        added = held.add_study(app, actor(), study_uid)
        click.echo(f"study {study_uid} " + ("held out" if added else "was held out already"))
    elif patient_id is not None:
        click.echo(
            f"{held.add_patient(app, actor(), patient_id, issuer)} held out (every study, now and later)"
        )
    else:
        assert fraction is not None
        chosen = held.add_fraction(app, actor(), fraction, seed, modality)
        click.echo(f"{len(chosen)} more studies held out (fraction {fraction}, seed {seed})")


@holdout.command("list")
@home_option
@json_option
def holdout_list(home: str | None, as_json: bool) -> None:
    """What is held out: studies by UID, patients by a prefix of their keyed lookup (never the ID)."""
    app = open_home(home)
    rows = [
        {
            "held_out": r.study_uid or f"patient:{(r.patient_lookup or '')[:12]}",
            "rule": r.rule,
            "added_by": r.added_by,
            "added_at": r.added_at,
        }
        for r in held.list_held_out(app)
    ]
    emit_rows(rows, as_json, ["held_out", "rule", "added_by", "added_at"])


@holdout.command("remove")
@home_option
@click.option("--study", "study_uid", help="the study's UID")
@click.option("--patient", "patient_id", help="the patient's ID")
@click.option("--issuer", default="", help="the issuer of that patient ID")
def holdout_remove(home: str | None, study_uid: str | None, patient_id: str | None, issuer: str) -> None:
    """Let a study or patient be released again."""
    if (study_uid is None) == (patient_id is None):
        raise ConfigError("give one of --study UID, --patient ID")
    app = open_home(home)
    held.remove(app, actor(), study_uid, patient_id, issuer)
    click.echo("removed from the held-out set")


@holdout.group("labels", cls=ApplianceGroup)
def labels() -> None:
    """Reference SEGs of held-out series: what models are validated against."""


@labels.command("import")
@home_option
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def labels_import(home: str | None, files: tuple[str, ...]) -> None:
    """Store reference SEGs, each naming a series of a held-out study."""
    from pathlib import Path

    from appliance.research.reference_labels import import_labels

    done = import_labels(open_home(home), actor(), [Path(f) for f in files])
    click.echo(f"{len(done)} reference labels imported")
