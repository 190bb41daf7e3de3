"""kill -9 during a burst of events: after restart the log verifies and keeps every reported event."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from audit.log import AuditLog
from audit.reader import read_entries
from audit.verify import verify_log
from testbed.processes import REPO

KEY = bytes(range(32))

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from audit.events import Action, AuditEvent, EventID, Outcome
    from audit.log import AuditLog

    root = Path(sys.argv[1])
    signer = load_pem_private_key((root / "signer.pem").read_bytes(), None)
    log = AuditLog(root / "log", bytes(range(32)), signer, "crash-test", root / "witness.jsonl", 1000, 3600)
    n = 0
    while True:
        for _ in range(200):
            alert = AuditEvent(EventID.SECURITY_ALERT, Action.EXECUTE, Outcome.SUCCESS, description=f"b {n}")
            log.emit(alert)
            n += 1
        log.flush()
        print(n, flush=True)  # every event below n is reported written
    """
)


def test_kill_9_keeps_every_reported_event(tmp_path):
    signer = Ed25519PrivateKey.generate()
    (tmp_path / "signer.pem").write_bytes(
        signer.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert writer.stdout is not None
    reported = 0
    for line in writer.stdout:
        reported = int(line)
        if reported >= 5000:
            writer.kill()  # SIGKILL, while the next burst is being written
            break
    writer.wait()

    restarted = AuditLog(tmp_path / "log", KEY, signer, "crash-test", tmp_path / "witness.jsonl", 1000, 3600)
    restarted.close()
    result = verify_log(tmp_path / "log", signer.public_key(), "crash-test", tmp_path / "witness.jsonl")
    assert result.entries >= reported
    written = {e["description"] for e in read_entries(tmp_path / "log", KEY)}
    assert {f"b {n}" for n in range(reported)} <= written
