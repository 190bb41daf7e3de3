"""Every command-line error is one line saying what is wrong and what to do, exit status 1 (2 for
a usage error), never a traceback."""

from __future__ import annotations

import socket
import subprocess

from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from testbed.processes import APPLIANCE, REPO, run_cli

QUIET = {"APPLIANCE_DICOM__HOST": "127.0.0.1", "APPLIANCE_INFERENCE__ENABLED": "false"}


def _one_line(result, status: int = 1, logged: bool = False) -> str:  # type: ignore[no-untyped-def]
    """The error line; for ``serve`` (``logged``) after the JSON log lines it wrote to stderr."""
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    if logged:
        lines = [line for line in lines if not line.startswith('{"at": ')]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_audit_verify_with_a_key_that_is_not_pem_or_not_ed25519(home, tmp_path):
    garbage = tmp_path / "key.pem"
    garbage.write_text("not a key at all")
    assert "is not a PEM public key" in _one_line(
        run_cli(home, "audit", "verify", "--public-key", str(garbage), check=False)
    )
    rsa = tmp_path / "rsa.pem"
    rsa.write_bytes(
        generate_private_key(65537, 2048)
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    said = _one_line(run_cli(home, "audit", "verify", "--public-key", str(rsa), check=False))
    assert "not the Ed25519 key" in said


def test_serve_on_a_port_in_use_says_so_in_one_line(home):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        dicom = run_cli(home, "serve", "--dicom-port", str(port), "--http-port", "0", check=False, env=QUIET)
        assert f"the DICOM port {port} cannot be opened" in _one_line(dicom, logged=True)
        http = run_cli(home, "serve", "--dicom-port", "0", "--http-port", str(port), check=False, env=QUIET)
        assert f"the HTTP port {port} cannot be opened" in _one_line(http, logged=True)
    finally:
        taken.close()
    assert not (home / "audit" / "serving").exists()  # a start that never served is not an unclean stop


def test_json_and_csv_together_and_the_version(home):
    both = run_cli(home, "audit", "list", "--json", "--csv", check=False)
    assert both.returncode == 2 and "choose one" in both.stderr
    version = subprocess.run([*APPLIANCE, "--version"], capture_output=True, text=True, cwd=REPO)
    assert version.returncode == 0 and version.stdout.startswith("appliance, version ")


def test_keys_list_and_audit_verify_have_json_and_times_are_iso_8601(home):
    import json
    from datetime import datetime

    (key,) = json.loads(run_cli(home, "keys", "list", "--json").stdout)
    assert key["active"] is True
    verified = json.loads(run_cli(home, "audit", "verify", "--json").stdout)
    assert verified["verified"] is True and verified["entries"] >= 1
    (model,) = json.loads(run_cli(home, "models", "list", "--json").stdout)
    parsed = datetime.fromisoformat(model["imported_at"])  # ISO 8601 with its offset, to the second
    assert parsed.tzinfo is not None and model["imported_at"].count(":") == 3
