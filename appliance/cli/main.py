"""``appliance``: init, serve, keys, sources, destinations, send, sends, studies, models, jobs,
anonymize, users, workspaces,
datasets, holdout.

Each command lives in a module of this package that is imported only when that command runs (or
help lists it): nearly all of a command's start is imports (pydantic and SQLModel classes,
pydicom, pynetdicom, FastAPI), and each command needs only its own.
"""

from __future__ import annotations

import gc
import os

import click

from appliance.cli.common import LazyGroup
from appliance.runtime import logs

COMMANDS = {
    "init": "appliance.cli.service:init",
    "serve": "appliance.cli.service:serve",
    "keys": "appliance.cli.keys:keys",
    "sources": "appliance.cli.peers:sources",
    "destinations": "appliance.cli.peers:destinations",
    "send": "appliance.cli.sends:send",
    "sends": "appliance.cli.sends:sends",
    "studies": "appliance.cli.studies:studies",
    "audit": "appliance.cli.audit:audit",
    "models": "appliance.cli.models:models",
    "jobs": "appliance.cli.jobs:jobs",
    "anonymize": "appliance.cli.anonymize:anonymize",
    "users": "appliance.cli.users:users",
    "workspaces": "appliance.cli.workspaces:workspaces",
    "datasets": "appliance.cli.datasets:datasets",
    "holdout": "appliance.cli.holdout:holdout",
    "compliance": "appliance.cli.compliance:compliance",
}


@click.group(cls=LazyGroup, commands_in=COMMANDS)
@click.version_option(package_name="imaging-appliance", prog_name="appliance")
def cli() -> None:
    """On-premises imaging appliance: encrypted DICOM ingest, inference, audit, research export."""
    os.umask(0o077)  # everything the appliance writes (database, logs, store) is private to it
    logs.configure_command()  # library warnings scrubbed of the values they quote (serve: JSON lines)


def main() -> None:
    """The console script. At exit the command's objects are left to the operating system: the
    collector's last pass over them, which frees nothing that matters, cost 0.2-0.4 s per command
    (everything durable is written and closed before the command returns)."""
    try:
        cli()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
