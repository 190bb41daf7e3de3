"""The retraining loop, whole, on CPU and through the commands the README gives: a release with
labels, ``research pull``, ``research train`` from the demo bundle, ``keygen``, ``sign``, ``submit``;
then ``appliance models fetch``, ``holdout labels import``, ``models validate``, ``promote`` and
``rollback``; and the candidates the appliance must refuse: random weights, a tampered bundle, one
trained on a release that holds a case now held out."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from appliance.admin.model_registry import DEMO_MODEL
from models.lineage import read_lineage
from testbed.dcmtk import storescu
from testbed.labelled import labelled_phantom, labelled_site
from testbed.processes import REPO, ApplianceProcess, OrthancProcess, run_cli, wait_for
from testbed.synthetic import FakePatient, write_series
from tests.support.environments import INFERENCE
from tests.support.inspect import audit_events

pytestmark = pytest.mark.slow


def research(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "workspace.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def models(home: Path) -> dict[str, dict]:
    listed = json.loads(run_cli(home, "models", "list", "--json").stdout)
    return {row["version"]: row for row in listed}


def signed_variant(candidate: Path, out: Path, version: str, key: Path, change=None) -> Path:  # type: ignore[no-untyped-def]
    """A copy of ``candidate`` as another version, changed by ``change(bundle)``, signed by ``key``."""
    shutil.copytree(candidate, out)
    metadata_file = out / "configs" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata["version"] = version
    metadata_file.write_text(json.dumps(metadata, indent=2))
    if change is not None:
        change(out)
    research("sign", str(out), "--key", str(key))
    return out


def random_weights(bundle: Path) -> None:
    weights = bundle / "models" / "model.pt"
    state = torch.load(weights, map_location="cpu", weights_only=True)
    generator = torch.Generator().manual_seed(7)
    torch.save({k: torch.randn(v.shape, generator=generator) * 0.05 for k, v in state.items()}, weights)


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A home with eight labelled phantom studies (ground-truth SEGs stored as AI results) and three
    held out with reference labels; released as demo v1, pulled, trained for two epochs from the
    demo bundle, signed by a trusted research key and submitted to the folder workspace's inbox."""
    root = tmp_path_factory.mktemp("loop")
    site = labelled_site(root, training=8, held_out=3)
    home, workspace = site.home, site.home / "research-workspace"
    active = home / "models" / DEMO_MODEL / "1.0.0"
    trained = research(
        "train", str(site.dataset), "--bundle", str(active), "--out", str(root / "candidate"),
        "--trust", str(site.release_key), "--epochs", "2", "--device", "cpu",
        "--tracking", f"sqlite:///{root / 'mlflow.db'}",
    )  # fmt: skip
    assert "trained 2 epochs on demo v1" in trained.stdout
    research("keygen", str(root / "lab.pem"))
    signed = research("sign", str(root / "candidate"), "--key", str(root / "lab.pem"))
    assert f"signed {DEMO_MODEL} 1.1.0 as lab" in signed.stdout
    run_cli(home, "models", "trust", "lab", str(root / "lab.pub"))
    research("submit", str(root / "candidate"), str(workspace))
    return {"home": home, "root": root, "workspace": workspace}


def test_a_retrained_candidate_is_fetched_validated_promoted_and_rolled_back(loop: dict) -> None:
    home, root = loop["home"], loop["root"]
    lineage = read_lineage(root / "candidate")
    assert lineage is not None and (lineage.release.name, lineage.release.version) == ("demo", 1)
    assert lineage.parent.version == "1.0.0" and lineage.epochs == 2 and len(lineage.per_epoch) == 2
    assert lineage.cases["training"] + lineage.cases["validation"] == 8

    fetched = run_cli(home, "models", "fetch", "local")
    assert f"{DEMO_MODEL} 1.1.0: imported" in fetched.stdout
    assert models(home)["1.1.0"]["release"] == "demo v1"
    refused = run_cli(home, "models", "promote", DEMO_MODEL, "1.1.0", check=False)
    assert refused.returncode == 1 and "no validation against the active version 1.0.0" in refused.stderr

    validated = run_cli(home, "models", "validate", DEMO_MODEL, "1.1.0", "--json")
    report = json.loads(validated.stdout)
    assert report["passed"] and report["active"] == "1.0.0" and len(report["cases"]) == 3
    assert {c["label_source"] for c in report["cases"]} == {"reference"}
    dice = report["aggregate"]["lesion"]["dice"]
    assert dice["candidate"] > 0.5 and dice["improvement"]["low"] > -0.05
    assert {c["name"] for c in report["criteria"]} >= {
        "lesion dice non-inferior",
        "minimum cases",
        "subgroup modality=CT",
    }
    assert "PASSED" in run_cli(home, "models", "report", DEMO_MODEL, "1.1.0").stdout

    run_cli(home, "models", "promote", DEMO_MODEL, "1.1.0")
    listed = models(home)
    assert listed["1.1.0"]["state"] == "active" and listed["1.0.0"]["state"] == "staged"
    assert listed["1.1.0"]["validation"].startswith("passed vs 1.0.0")
    assert "1.0.0 is active again" in run_cli(home, "models", "rollback", DEMO_MODEL).stdout
    assert models(home)["1.0.0"]["state"] == "active"
    assert "1.1.0 is active again" in run_cli(home, "models", "rollback", DEMO_MODEL).stdout


def test_random_weights_fail_validation_and_promotion_needs_an_audited_override(loop: dict) -> None:
    home, root = loop["home"], loop["root"]
    variant = signed_variant(root / "candidate", root / "random", "1.9.0", root / "lab.pem", random_weights)
    run_cli(home, "models", "import", str(variant))
    active = next(v for v, row in models(home).items() if row["state"] == "active")
    failed = run_cli(home, "models", "validate", DEMO_MODEL, "1.9.0", check=False)
    assert failed.returncode == 1 and "FAILED" in failed.stdout and "[FAIL] lesion dice" in failed.stdout
    refused = run_cli(home, "models", "promote", DEMO_MODEL, "1.9.0", check=False)
    assert refused.returncode == 1 and "failed its validation" in refused.stderr
    assert models(home)[active]["state"] == "active"

    run_cli(home, "models", "promote", DEMO_MODEL, "1.9.0", "--override-reason", "vendor hotfix, ticket 12")
    assert models(home)["1.9.0"]["state"] == "active"
    alerts = [e for e in audit_events(home) if e["type"] == "Model Promotion Override"]
    assert len(alerts) == 1 and "ticket 12" in alerts[0]["description"]
    run_cli(home, "models", "rollback", DEMO_MODEL)
    assert models(home)[active]["state"] == "active"


def test_candidates_from_a_release_holding_a_now_held_out_case_or_tampered_are_refused(loop: dict) -> None:
    home, root, workspace = loop["home"], loop["root"], loop["workspace"]
    tampered = signed_variant(root / "candidate", root / "tampered", "1.7.0", root / "lab.pem")
    research("submit", str(tampered), str(workspace))
    (workspace / "models" / "inbox" / DEMO_MODEL / "1.7.0" / "models" / "model.pt").write_bytes(b"swapped")
    fetched = run_cli(home, "models", "fetch", "local", check=False)
    assert fetched.returncode == 1 and "1.7.0: refused" in fetched.stdout and "model.pt" in fetched.stdout

    run_cli(home, "holdout", "add", "--patient", "PID-T0")  # released in demo v1, held out now
    late = signed_variant(root / "candidate", root / "late", "1.8.0", root / "lab.pem")
    research("submit", str(late), str(workspace))
    fetched = run_cli(home, "models", "fetch", "local", check=False)
    assert fetched.returncode == 1 and "1.8.0: refused" in fetched.stdout and "held out" in fetched.stdout
    assert "1.8.0" not in models(home) and "1.7.0" not in models(home)
    refusals = [e for e in audit_events(home) if e["type"] == "Model Registry" and e["outcome"] != 0]
    assert any("1.8.0" in json.dumps(e) and "held out" in e["description"] for e in refusals)


def _send(appliance: ApplianceProcess, root: Path, seed: int) -> None:
    datasets, _ = labelled_phantom(seed, FakePatient(f"New^{seed}", f"PID-N{seed}", "19700101"))
    assert storescu(appliance.dicom_port, write_series(root / f"sent-{seed}", datasets)).returncode == 0


def _job_outcomes(home: Path, count: int) -> list[str]:
    wait_for(
        lambda: sum(j["state"] == "done" for j in jobs(home)) == count, 180, f"{count} jobs", interval=1.0
    )
    return [job["outcome"] for job in jobs(home)]


def jobs(home: Path) -> list[dict]:
    return json.loads(run_cli(home, "jobs", "--json").stdout)


def _backlog_done(home: Path) -> int:
    """The number of jobs once the appliance has run the series stored before it started."""
    counts: list[int] = []

    def settled() -> bool:
        found = jobs(home)
        counts.append(len(found))
        finished = all(job["state"] in ("done", "failed") for job in found)
        return finished and len(counts) >= 3 and counts[-3] == counts[-1] > 0

    wait_for(settled, 300, "the stored series' jobs done", interval=1.0)
    return counts[-1]


def test_shadow_measures_a_candidate_without_sending_it_and_the_next_series_follows_promotions(
    loop: dict, tmp_path: Path
) -> None:
    """The active version is 1.1.0 here (the tests above end on it); 1.0.0 runs in shadow for one
    series, which reaches the PACS only as 1.1.0's results; then promotion and rollback each change
    the version the next series runs."""
    home = loop["home"]
    run_cli(home, "sources", "add", "local-scu", "--ae", "SCU", "--host", "127.0.0.1")
    pacs = OrthancProcess(tmp_path / "orthanc").start()
    appliance = ApplianceProcess(home, tmp_path / "appliance.out", INFERENCE).start()
    try:
        before = _backlog_done(home)  # the studies the loop stored, run by 1.1.0 without a PACS
        run_cli(home, "destinations", "add", "pacs", "--ae", "ORTHANC", "--host", "127.0.0.1",
                "--port", str(pacs.dicom_port), "--results")  # fmt: skip
        run_cli(home, "models", "shadow", DEMO_MODEL, "1.0.0", "--series", "1")
        _send(appliance, tmp_path, 300)
        outcome = _job_outcomes(home, before + 1)[-1]
        assert (
            f"{DEMO_MODEL} 1.1.0 by" in outcome and f"shadow {DEMO_MODEL} 1.0.0: agreement lesion" in outcome
        )
        wait_for(lambda: len(pacs.instances()) == 2, 60, "the active version's SEG and SR at the PACS")
        shadowed = json.loads(run_cli(home, "models", "shadow-report", DEMO_MODEL, "1.0.0", "--json").stdout)
        assert shadowed["series"] == 1 and shadowed["failures"] == [] and shadowed["against"] == ["1.1.0"]
        assert shadowed["agreement"]["lesion"]["min"] > 0.8 and shadowed["latency_ratio"] > 0

        run_cli(home, "models", "validate", DEMO_MODEL, "1.0.0")
        run_cli(home, "models", "promote", DEMO_MODEL, "1.0.0")
        _send(appliance, tmp_path, 301)  # the shadow ran its one series: this one has no shadow
        outcome = _job_outcomes(home, before + 2)[-1]
        assert f"{DEMO_MODEL} 1.0.0 by" in outcome and "shadow" not in outcome
        run_cli(home, "models", "rollback", DEMO_MODEL)
        _send(appliance, tmp_path, 302)
        assert f"{DEMO_MODEL} 1.1.0 by" in _job_outcomes(home, before + 3)[-1]
        wait_for(lambda: len(pacs.instances()) == 6, 60, "three series' SEG and SR at the PACS")
    finally:
        appliance.stop()
        pacs.stop()
    report = run_cli(home, "models", "shadow-report", DEMO_MODEL, "1.0.0").stdout
    assert "1 series beside 1.1.0, 0 failed" in report
    assert [e["description"] for e in audit_events(home) if e["type"] == "Model Shadow"] == [
        "shadow started for 1 series"
    ]
