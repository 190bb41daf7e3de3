"""The command line imports a command's module only when that command runs."""

from __future__ import annotations

import subprocess
import sys

import click

from appliance.cli.main import COMMANDS, cli


def test_every_command_is_listed_and_resolves():
    context = click.Context(cli)
    assert cli.list_commands(context) == sorted(COMMANDS)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert isinstance(command, click.Command) and command.name == name


def test_a_command_does_not_import_the_others():
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from appliance.cli.main import cli\n"
        "result = CliRunner().invoke(cli, ['jobs', '--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = ('fastapi', 'pynetdicom', 'appliance.server', 'anonymizer.engine')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"  # the HTTP server, the DICOM network and the anonymizer stay unloaded


def test_every_command_and_option_says_what_it_does():
    context = click.Context(cli)
    missing: list[str] = []

    def walk(command: click.Command, name: str) -> None:
        if not command.help:
            missing.append(name)
        for param in command.params:
            if isinstance(param, click.Option) and not param.help and param.name != "home":
                missing.append(f"{name} {param.opts[0]}")
        if isinstance(command, click.Group):
            for sub in command.list_commands(context):
                walk(command.get_command(context, sub), f"{name} {sub}")

    for name in cli.list_commands(context):
        walk(cli.get_command(context, name), name)
    assert missing == []
