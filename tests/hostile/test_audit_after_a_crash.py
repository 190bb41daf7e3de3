"""The audit log after kill -9: what a cut could remove is bounded by the checkpoint window; the
witness must vouch for every clean stop (else verify fails with its own exit status); the next
start records that the previous run ended unclean and how far the log had been checkpointed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from appliance.cli.audit import WITNESS_FAILED
from audit.log import CHECKPOINTS, ENTRIES, read_records
from testbed.dcmtk import echoscu
from testbed.processes import APPLIANCE, ApplianceProcess, run_cli
from tests.support.environments import FAST
from tests.support.inspect import audit_events

pytestmark = pytest.mark.slow

WINDOW = {**FAST, "APPLIANCE_AUDIT__CHECKPOINT_SECONDS": "1"}


def _newest_checkpoint(home) -> int:  # type: ignore[no-untyped-def]
    return max(int(p.stem) for p in (home / "audit" / CHECKPOINTS).glob("*.note"))


def test_after_kill_9_only_the_window_is_uncovered_and_the_restart_says_so(home, tmp_path):
    first = ApplianceProcess(home, tmp_path / "first.out", WINDOW).start()
    assert echoscu(first.dicom_port) == 0  # an association: audit entries
    time.sleep(2.5)  # more than the 1 s window since the last entry
    first.kill9()
    entries = sum(1 for _ in read_records(home / "audit" / ENTRIES))
    assert _newest_checkpoint(home) == entries  # nothing older than the window is uncovered
    # cutting the last entry (the Security Alert or transfer an intruder would hide) is caught
    log = home / "audit" / ENTRIES
    last = list(read_records(log))[-1]
    data = log.read_bytes()
    log.write_bytes(data[: last.offset])
    cut = run_cli(home, "audit", "verify", check=False)
    assert cut.returncode == 1 and "truncated" in cut.stderr
    log.write_bytes(data)

    second = ApplianceProcess(home, tmp_path / "second.out", WINDOW).start()
    second.stop()
    starts = [e for e in audit_events(home) if e["type"] == "Application Start"]
    assert len(starts) == 2 and starts[0]["description"] == ""
    assert starts[1]["outcome"] == 4
    assert starts[1]["description"] == (
        f"the previous run ended unclean; the audit log held {entries} entries, "
        f"{entries} of them under a signed checkpoint"
    )
    assert "verified" in run_cli(home, "audit", "verify").stdout

    third = ApplianceProcess(home, tmp_path / "third.out", WINDOW).start()  # after a clean stop
    third.stop()
    assert [e["description"] for e in audit_events(home) if e["type"] == "Application Start"][2] == ""


def test_verify_fails_apart_when_the_witness_is_missing_or_older_than_a_clean_stop(appliance, home):
    assert echoscu(appliance.dicom_port) == 0
    appliance.stop()
    witness = home / "witness" / "audit-checkpoints.jsonl"
    assert "verified" in run_cli(home, "audit", "verify").stdout

    lines = witness.read_text().splitlines(keepends=True)
    witness.write_text("".join(lines[:-1]))  # the newest witnessed checkpoint removed
    older = run_cli(home, "audit", "verify", check=False)
    assert older.returncode == WITNESS_FAILED and "older than the log's last clean stop" in older.stderr

    witness.unlink()
    missing = run_cli(home, "audit", "verify", check=False)
    assert missing.returncode == WITNESS_FAILED and "is missing" in missing.stderr


def test_an_auditor_verifies_a_copy_with_the_public_key_alone(appliance, home, tmp_path):
    assert echoscu(appliance.dicom_port) == 0
    appliance.stop()
    copy = tmp_path / "auditor"
    shutil.copytree(home / "audit", copy / "audit")
    shutil.copy(home / "witness" / "audit-checkpoints.jsonl", copy / "witness.jsonl")
    shutil.copy(home / "audit-signing-key.pub", copy / "key.pub")
    verify = [*APPLIANCE, "audit", "verify", "--log-dir", str(copy / "audit"),
              "--witness", str(copy / "witness.jsonl"), "--public-key", str(copy / "key.pub")]  # fmt: skip
    no_home = {k: v for k, v in os.environ.items() if k != "APPLIANCE_HOME"}
    result = subprocess.run(verify, capture_output=True, text=True, cwd=copy, env=no_home)
    assert result.returncode == 0 and "audit log verified" in result.stdout, result.stderr
    (copy / "witness.jsonl").unlink()
    missing = subprocess.run(verify, capture_output=True, text=True, cwd=copy, env=no_home)
    assert missing.returncode == WITNESS_FAILED and "is missing" in missing.stderr
