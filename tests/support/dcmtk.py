"""dcmtk's echoscu and storescu as the tests' DICOM peers (TCP_NODELAY set, as a PACS would)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ENV = {**os.environ, "TCP_NODELAY": "1"}


def _command(tool: str, port: int, calling: str, called: str, options: list[str]) -> list[str]:
    return [tool, *options, "-aet", calling, "-aec", called, "127.0.0.1", str(port)]


def echoscu(
    port: int, calling: str = "SCU", called: str = "APPLIANCE", options: list[str] | None = None
) -> int:
    command = _command("echoscu", port, calling, called, options or [])
    return subprocess.run(command, capture_output=True, env=ENV, timeout=60).returncode


def storescu(
    port: int,
    files: list[Path],
    calling: str = "SCU",
    called: str = "APPLIANCE",
    options: list[str] | None = None,
) -> subprocess.CompletedProcess:
    command = [*_command("storescu", port, calling, called, options or []), *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)


def storescu_verbose(port: int, files: list[Path]) -> subprocess.Popen:
    """A running storescu -v whose stdout reports each file sent and each response."""
    command = [*_command("storescu", port, "SCU", "APPLIANCE", ["-v"]), *map(str, files)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
