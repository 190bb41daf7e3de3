"""A study through the gateway shows up in `appliance audit list`, and `appliance audit verify` passes."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from audit import checkpoint, merkle
from testbed.dcmtk import storescu
from testbed.processes import run_cli, wait_for
from testbed.synthetic import ct_series, write_series

pytestmark = pytest.mark.slow


def test_study_is_audited_and_the_log_verifies(appliance, home, tmp_path, patient):
    files = write_series(tmp_path / "in", ct_series(7, patient))
    assert storescu(appliance.dicom_port, files).returncode == 0

    def transfers() -> list[dict]:
        listed = run_cli(
            home, "audit", "list", "--json", "--event", "110104", "--patient", patient.patient_id
        )
        return json.loads(listed.stdout)

    wait_for(lambda: transfers(), 15, "the transfer event", interval=0.5)
    (transfer,) = transfers()
    assert transfer["description"] == "instances=7" and transfer["outcome"] == 0
    assert {"kind": "patient", "id": patient.patient_id, "detail": {}} in transfer["objects"]
    assert transfer["participants"][0]["user_id"] == "SCU"

    everything = json.loads(run_cli(home, "audit", "list", "--json").stdout)
    types = [e["type"] for e in everything]
    assert "Association Accepted" in types and "Application Start" in types
    assert any(e["event_id"] == "110101" for e in everything)  # the earlier listing was itself audited

    as_csv = run_cli(home, "audit", "list", "--csv", "--who", "SCU", "--outcome", "0").stdout.splitlines()
    assert as_csv[0] == "index,at,event,type,outcome,who,address,objects,description"
    assert any("DICOM Instances Transferred" in row and "instances=7" in row for row in as_csv[1:])
    assert json.loads(run_cli(home, "audit", "list", "--json", "--since", "2999-01-01").stdout) == []

    appliance.stop()  # writes the shutdown checkpoint
    verified = run_cli(home, "audit", "verify")
    assert "audit log verified" in verified.stdout
    held = sorted((home / "audit" / "checkpoints").glob("*.note"))[-1]
    assert (
        "extends the auditor's checkpoint"
        in run_cli(home, "audit", "verify", "--checkpoint", str(held)).stdout
    )
    proof = json.loads(run_cli(home, "audit", "prove", "0").stdout)
    # what an independent verifier does with it: check the checkpoint, then the inclusion
    public_key = load_pem_public_key((home / "audit-signing-key.pub").read_bytes())
    signed = checkpoint.verify(proof["checkpoint"], public_key, "imaging-appliance")
    decode = base64.b64decode
    merkle.verify_inclusion(
        proof["leaf_index"],
        signed.size,
        decode(proof["leaf_hash"]),
        [decode(p) for p in proof["proof"]],
        signed.root,
    )
