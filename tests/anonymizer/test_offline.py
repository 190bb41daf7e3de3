"""De-identification makes no network access: the CLI runs under an audit hook that refuses sockets.

The hook (``sys.addaudithook``) sees every outward socket call in the process (connect, name lookup,
send), whichever library makes it (phonenumbers, pydicom, Tesseract's wrapper, requests); it records
and refuses them. (urllib3 binds a socket to ::1 when imported, to learn whether IPv6 exists: not
network access.) The run covers free-text scrubbing and Tesseract OCR; the test then proves the hook
was live by making a connection attempt of its own, which must be refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from testbed.planted import PlantedPatient, planted_ct, planted_secondary_capture, planted_sr

GUARD = """
import socket, sys
attempts = []
OUTWARD = {
    "socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
    "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg", "urllib.Request",
}
def guard(event, args):
    if event in OUTWARD:
        attempts.append(event)
        raise PermissionError("network blocked by test: " + event)
sys.addaudithook(guard)
from appliance.cli.main import cli
try:
    cli.main(args=sys.argv[1:], standalone_mode=False)
finally:
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=1)
        live = False
    except PermissionError:
        live = True
    print(f"NETWORK ATTEMPTS {len(attempts) - 1} {attempts[:-1]} GUARD LIVE {live}")
"""


def test_deidentification_runs_with_networking_blocked(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    patient = PlantedPatient()
    planted_ct(patient).save_as(source / "ct.dcm", enforce_file_format=True)
    planted_sr(patient).save_as(source / "sr.dcm", enforce_file_format=True)
    planted_secondary_capture(patient, [patient.family]).save_as(source / "sc.dcm", enforce_file_format=True)
    key = tmp_path / "key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            GUARD,
            "anonymize",
            str(source),
            str(tmp_path / "out"),
            "--key-file",
            str(key),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "3 de-identified, 0 quarantined, 0 failed" in result.stdout
    assert "NETWORK ATTEMPTS 0 [] GUARD LIVE True" in result.stdout
