"""``appliance anonymize IN OUT``: de-identify a file or folder offline, without a running appliance."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from anonymizer.batch import default_workers, deidentify_files, input_files, link_refused, summarise
from anonymizer.engine import Deidentifier
from anonymizer.errors import AnonymizerError
from anonymizer.profile import DEFAULT_PROFILE, named_profile
from anonymizer.table import DEFAULT_TABLE, load_table
from appliance.cli.common import actor, home_option, open_home
from appliance.security.keys import read_key_file
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject

INCOMPLETE = 3  # exit status when any object failed or was quarantined (1: the run itself could not go)


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--profile", "profile_name", help="named profile (default: deidentify.default_profile, or research)"
)
@click.option(
    "--key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="pseudonymisation secret (32 random bytes, mode 0600) instead of the home's; no home is opened",
)
@click.option(
    "--profile-table", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Table E.1-1 JSON"
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="one JSON line per object",
)
@click.option("--workers", type=click.IntRange(min=0), default=0, help="processes (default 0: one per CPU)")
@click.option(
    "--follow-links-out", is_flag=True, help="follow symbolic links under SOURCE that lead outside it"
)
@home_option
def anonymize(
    source: Path,
    target: Path,
    profile_name: str | None,
    key_file: Path | None,
    profile_table: Path | None,
    workers: int,
    report_path: Path | None,
    follow_links_out: bool,
    home: str | None,
) -> None:
    """De-identify the DICOM files under SOURCE into TARGET (named by their new UIDs).

    With a home, its pseudonymisation secret is used, the pseudonym map is kept encrypted in it and
    the run is audited; with --key-file, nothing but SOURCE, the key and TARGET is touched.
    """
    if target.resolve().is_relative_to(source.resolve()):
        raise click.ClickException(
            "TARGET is inside SOURCE (a second run would read its own output); choose another"
        )
    app, pseudonyms = None, None
    if key_file is not None:
        secret = read_key_file(key_file, "pseudonymisation key file")
        profiles, table_path, default = {}, profile_table or DEFAULT_TABLE, DEFAULT_PROFILE
    else:
        from appliance.security.pseudonym_map import PseudonymMap, pseudonymisation_secret

        app = open_home(home)
        secret = pseudonymisation_secret(app)
        pseudonyms = PseudonymMap(app)
        settings = app.settings.deidentify
        profiles, default = settings.profiles, settings.default_profile
        table_path = profile_table or app.settings.path(settings.profile_table)
    try:
        profile = named_profile(profile_name or default, profiles)
        deidentifier = Deidentifier(secret, profile, load_table(table_path))
    except AnonymizerError as error:
        raise click.ClickException(str(error)) from error
    files, links_out = input_files(source, follow_links_out)
    workers = workers or min(default_workers(), max(1, len(files) // 16))  # a few files: one process
    reports = [link_refused(path, source) for path in links_out]
    with click.progressbar(length=len(files), label="de-identifying", file=sys.stderr) as bar:
        recorder = pseudonyms.record if pseudonyms else None
        for report in deidentify_files(files, source, target, deidentifier, recorder, workers):
            reports.append(report)
            bar.update(1)
    summary = summarise(reports)
    for number, report in enumerate(reports, 1):
        if report.quarantined or report.failed:
            click.echo(
                f"{'quarantined' if report.quarantined else 'failed'} #{number} {report.source}: "
                f"{report.quarantined or report.failed}",
                err=True,
            )
    if report_path is not None:
        # Input file names can hold PHI: the file names each input by its number (as printed above)
        lines = (
            {"input": n, **{k: v for k, v in r.as_dict().items() if k != "source"}}
            for n, r in enumerate(reports, 1)
        )
        report_path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    if app is not None and pseudonyms is not None:
        pseudonyms.save()
        app.audit.emit(
            AuditEvent(
                event_id=EventID.EXPORT,
                action=Action.EXECUTE,
                outcome=Outcome.SUCCESS if not summary.failed else Outcome.MINOR_FAILURE,
                type_code="De-identification",
                participants=(Participant(actor(), is_requestor=True),),
                objects=(ParticipantObject("profile", profile.name),),
                description=summary.line(),
            )
        )
    click.echo(f"{summary.line()} (profile {profile.name}) -> {target}")
    if summary.failed or summary.quarantined:
        sys.exit(INCOMPLETE)
