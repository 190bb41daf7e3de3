"""``appliance compliance``: the appliance checked against its written policy, on demand."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from appliance.cli.common import ApplianceGroup, actor, emit_rows, home_option, json_option, open_home
from appliance.compliance import reports


@click.group(cls=ApplianceGroup)
def compliance() -> None:
    """Compliance reports: audit log, accounts, emergency access, sign-ins, exports, keys, TLS, drift."""


@compliance.command("report")
@home_option
@click.option(
    "--since", type=click.DateTime(), help="look at events from this time (UTC; default: the last report)"
)
@json_option
def compliance_report(home: str | None, since: datetime | None, as_json: bool) -> None:
    """Run every check now; the report is signed, kept and audited. Exits 1 when a check failed."""
    app = open_home(home)
    row = reports.run(app, actor(), since.replace(tzinfo=UTC) if since else None)
    report = reports.opened(app, row)
    if as_json:
        click.echo(json.dumps({"id": row.id, "sha256": row.digest, "report": report}, indent=2))
    else:
        click.echo(f"compliance report {row.id} (sha256 {row.digest}), events since {report['since']}")
        for finding in report["findings"]:
            mark = "pass" if finding["passed"] else "FAIL"
            click.echo(f"  {mark}  {finding['severity']:<6}  {finding['check']}: {finding['summary']}")
    if row.failed:
        raise SystemExit(1)


@compliance.command("list")
@home_option
@json_option
def compliance_list(home: str | None, as_json: bool) -> None:
    """The reports kept, newest first."""
    rows = [
        {"id": r.id, "created_at": r.created_at, "trigger": r.trigger, "failed": r.failed,
         "worst": r.worst or "", "sha256": r.digest}
        for r in reports.history(open_home(home))
    ]  # fmt: skip
    emit_rows(rows, as_json, ["id", "created_at", "trigger", "failed", "worst", "sha256"])


@compliance.command("signed")
@home_option
@click.argument("report_id", type=int, required=False)
def compliance_signed(home: str | None, report_id: int | None) -> None:
    """A report's DSSE envelope (the newest by default), to hand to a reviewer with the audit
    signing key (audit-signing-key.pub in the home)."""
    row = reports.one(open_home(home), report_id)
    click.echo(row.envelope.decode())
