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

import numpy as np
import pytest
import torch
from pydicom.dataset import Dataset

from appliance.admin.model_registry import DEMO_MODEL
from appliance.context import open_appliance
from appliance.research.releases import export_public_pem
from models.bundle import ModelIdentity, Segment
from models.codes import code_for
from models.lineage import read_lineage
from models.results import write_results
from models.volume import build_volume
from testbed.phantom import make_phantom
from testbed.processes import REPO, run_cli
from testbed.research import store_datasets
from testbed.synthetic import FakePatient, phantom_series
from tests.support.datasets import read_back
from tests.support.inspect import audit_events

pytestmark = pytest.mark.slow

SPACING = (3.0, 3.0, 4.0)
SHAPE = (112, 80, 24)
LESION = Segment(1, "lesion", code_for("lesion"))


def research(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "workspace.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def phantom_case(seed: int, patient: FakePatient) -> tuple[list[Dataset], Dataset]:
    """A phantom CT series and a SEG of its lesions (the ground truth) on the series' grid."""
    phantom = make_phantom(SHAPE, SPACING, seed=seed, lesion_count=2)
    datasets = phantom_series(phantom.hu, SPACING, patient=patient, seed=seed)
    volume = build_volume(read_back(datasets))
    labels = np.zeros(volume.array.shape, np.uint8)
    frames = volume.frame_images(labels)
    for k in range(SHAPE[2]):
        frames[k] = phantom.lesions_mask[:, :, k].T
    truth = write_results(volume, labels, (LESION,), ModelIdentity("ground truth", "1", ""))
    return datasets, truth.segmentation


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
    from appliance.home import init_home

    root = tmp_path_factory.mktemp("loop")
    home = root / "home"
    init_home(home)
    app = open_appliance(home)
    held, references = [], []
    try:
        for n in range(8):
            datasets, truth = phantom_case(100 + n, FakePatient(f"Train^{n}", f"PID-T{n}", "19700101"))
            store_datasets(app, datasets)
            store_datasets(app, [truth], calling=app.settings.dicom.ae_title)
        for n in range(3):
            datasets, truth = phantom_case(200 + n, FakePatient(f"Held^{n}", f"PID-H{n}", "19700101"))
            store_datasets(app, datasets)
            held.append(str(datasets[0].StudyInstanceUID))
            references.append(root / f"reference-{n}.dcm")
            truth.save_as(references[-1], enforce_file_format=True)
        (root / "release.pem").write_text(export_public_pem(app))
    finally:
        app.close()
    for study in held:
        run_cli(home, "holdout", "add", "--study", study)
    imported = run_cli(home, "holdout", "labels", "import", *map(str, references))
    assert "3 reference labels imported" in imported.stdout
    run_cli(home, "datasets", "release", "demo", "--to", "local", "--with-results", "all")

    workspace = home / "research-workspace"
    research("pull", f"{workspace}/demo/v1", str(root / "demo"), "--trust", str(root / "release.pem"))
    active = home / "models" / DEMO_MODEL / "1.0.0"
    trained = research(
        "train", str(root / "demo"), "--bundle", str(active), "--out", str(root / "candidate"),
        "--trust", str(root / "release.pem"), "--epochs", "2", "--device", "cpu",
        "--tracking", f"sqlite:///{root / 'mlflow.db'}",
    )  # fmt: skip
    assert "trained 2 epochs on demo v1" in trained.stdout
    research("keygen", str(root / "lab.pem"))
    signed = research("sign", str(root / "candidate"), "--key", str(root / "lab.pem"))
    assert f"signed {DEMO_MODEL} 1.1.0 as lab" in signed.stdout
    run_cli(home, "models", "trust", "lab", str(root / "lab.pub"))
    research("submit", str(root / "candidate"), str(workspace))
    return {"home": home, "root": root, "workspace": workspace, "held": held}


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
