"""dcmtk's echoscu and storescu as the tests' DICOM peers (TCP_NODELAY set, as a PACS would)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sysconfig
import time
from pathlib import Path

ENV = {**os.environ, "TCP_NODELAY": "1"}


@functools.cache
def dcmtk(tool: str) -> str:
    """The path of dcmtk's ``tool``, skipping this interpreter's scripts folder: pynetdicom 3
    installs its own ``storescu``, ``echoscu`` and ``findscu`` there, with other options, and an
    activated virtual environment would put them first on the PATH."""
    scripts = Path(sysconfig.get_path("scripts")).resolve()
    folders = [f for f in os.environ.get("PATH", "").split(os.pathsep) if f and Path(f).resolve() != scripts]
    found = shutil.which(tool, path=os.pathsep.join(folders))
    if found is None:
        raise FileNotFoundError(f"dcmtk's {tool} is not installed (Debian package dcmtk)")
    return found


def _command(tool: str, port: int, calling: str, called: str, options: list[str]) -> list[str]:
    return [dcmtk(tool), *options, "-aet", calling, "-aec", called, "127.0.0.1", str(port)]


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


def storescu_parallel(port: int, files: list[Path], called: str, parallel: int = 4) -> float:
    """Seconds to send every file over ``parallel`` concurrent storescu associations."""
    chunks = [files[i::parallel] for i in range(parallel)]
    started = time.perf_counter()
    senders = [
        subprocess.Popen(
            [*_command("storescu", port, "SCU", called, []), *map(str, chunk)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        for chunk in chunks
        if chunk
    ]
    for sender in senders:
        _, err = sender.communicate()
        if sender.returncode != 0:
            raise RuntimeError(f"storescu to {called} failed: {err.decode()[-500:]}")
    return time.perf_counter() - started
