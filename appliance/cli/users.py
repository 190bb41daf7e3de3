"""``appliance users``: accounts for clinicians, researchers, auditors and admins."""

from __future__ import annotations

import click

from appliance.access import accounts
from appliance.cli.common import ApplianceGroup, actor, emit_rows, home_option, json_option, open_home
from appliance.db.tables import Role

_ROLE = click.Choice([r.value for r in Role])


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _show(enrolment: accounts.Enrolment, as_json: bool) -> None:
    if as_json:
        click.echo(enrolment.model_dump_json())
        return
    click.echo(f"user {enrolment.username}: give them, once, and by a safe channel:")
    click.echo(f"  initial password: {enrolment.password}   (to be changed at first sign-in)")
    click.echo(f"  one-time code enrolment (authenticator app): {enrolment.totp_uri}")


@click.group(cls=ApplianceGroup)
def users() -> None:
    """People's accounts: add, list, disable, reset, roles."""


@users.command("add")
@home_option
@click.argument("name")
@click.option("--role", required=True, type=_ROLE, help="clinician, researcher, auditor or admin")
@click.option("--sources", help="a clinician sees only studies from these sources (names, comma-separated)")
@click.option("--modalities", help="a clinician sees only studies of these modalities (e.g. CT,MR)")
@json_option
def users_add(
    home: str | None, name: str, role: str, sources: str | None, modalities: str | None, as_json: bool
) -> None:
    """A new account; prints its initial password and TOTP enrolment once (--json: as JSON)."""
    app = open_home(home)
    enrolment = accounts.add_user(app, actor(), name, Role(role), _names(sources), _names(modalities))
    _show(enrolment, as_json)


@users.command("list")
@home_option
@json_option
def users_list(home: str | None, as_json: bool) -> None:
    """Accounts with their role, scope and state (never a password or secret)."""
    app = open_home(home)
    rows = [view.model_dump() for view in accounts.list_users(app)]
    columns = ["username", "role", "disabled", "must_change_password", "sources", "modalities"]
    emit_rows(rows, as_json, columns)


@users.command("disable")
@home_option
@click.argument("name")
def users_disable(home: str | None, name: str) -> None:
    """The account can no longer sign in; its tokens stop working at once."""
    app = open_home(home)
    accounts.disable_user(app, actor(), name)
    click.echo(f"user {name} disabled")


@users.command("reset")
@home_option
@click.argument("name")
@json_option
def users_reset(home: str | None, name: str, as_json: bool) -> None:
    """A new initial password and TOTP enrolment (lost device, lock-out); re-enables the account."""
    app = open_home(home)
    _show(accounts.reset_user(app, actor(), name), as_json)


@users.command("roles")
@home_option
@click.argument("name")
@click.option("--role", required=True, type=_ROLE, help="the account's role from now on")
@click.option("--sources", help="limit a clinician to these sources (names, comma-separated; empty: all)")
@click.option("--modalities", help="limit a clinician to these modalities (comma-separated; empty: all)")
def users_roles(home: str | None, name: str, role: str, sources: str | None, modalities: str | None) -> None:
    """Change an account's role and a clinician's scope."""
    app = open_home(home)
    view = accounts.set_role(app, actor(), name, Role(role), _names(sources), _names(modalities))
    click.echo(
        f"user {name}: {view.role}, sources {', '.join(view.sources) or 'all'}, "
        f"modalities {', '.join(view.modalities) or 'all'}"
    )
