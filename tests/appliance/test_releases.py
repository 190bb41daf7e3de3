"""Dataset releases on the appliance's side: versions, content addressing, pseudonyms stable across
versions, the held-out set, quarantine, the signed manifest and its audit event."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydicom import dcmread

from anonymizer.release.manifest import manifest_key, verify_manifest
from appliance.context import open_appliance
from appliance.errors import ConfigError
from appliance.research import holdout, requests
from appliance.research.releases import Releaser, export_signing_key
from appliance.research.selection import ReleaseCriteria
from audit import checkpoint
from audit.events import Participant
from testbed.processes import APPLIANCE, REPO, run_cli
from testbed.research import store_datasets
from testbed.synthetic import FakePatient, ct_series
from tests.support.inspect import audit_events, plaintext_hits

ALICE = FakePatient("Quixlebottom^Wilhelmina^Q", "PID-7382049", "19610213")
BOB = FakePatient("Zarnowski^Bartholomew", "PID-5550123", "19480707")


def _workspace(home: Path) -> Path:
    return home / "research-workspace"


def _manifest(app, name: str, version: int):  # type: ignore[no-untyped-def]
    envelope = (_workspace(app.settings.home) / manifest_key(name, version)).read_bytes()
    return verify_manifest(envelope, [export_signing_key(app).public_key()])


@pytest.fixture
def app(home: Path):  # type: ignore[no-untyped-def]
    opened = open_appliance(home)
    yield opened
    opened.close()


def test_versions_reuse_what_was_uploaded_and_keep_pseudonyms(app) -> None:  # type: ignore[no-untyped-def]
    alice = ct_series(4, ALICE, seed=1)
    store_datasets(app, alice)
    first = Releaser(app, "cli:test", workers=1).release("lungs", "local", ReleaseCriteria())
    assert (first.version, first.instances, first.uploaded, first.present) == (1, 4, 4, 0)

    store_datasets(app, ct_series(3, BOB, seed=2))
    second = Releaser(app, "cli:test", workers=2).release("lungs", "local", ReleaseCriteria())
    assert (second.version, second.instances, second.uploaded, second.present) == (2, 7, 3, 4)

    v1, v2 = _manifest(app, "lungs", 1), _manifest(app, "lungs", 2)
    assert v2.parent == 1 and v1.parent is None
    assert {f.path: f.sha256 for f in v1.files}.items() <= {f.path: f.sha256 for f in v2.files}.items()
    assert v2.counts == {
        "patients": 2, "studies": 2, "series": 2, "instances": 7,
        "quarantined": {}, "held_out_excluded_studies": 0,
    }  # fmt: skip
    assert v2.policy.profile == "research" and v2.policy.methods[0]["code"] == "113100"
    assert "PS3.15 Table E.1-1" in v2.policy.table and len(v2.policy.fingerprint) == 64
    # the manifest holds the audit log's checkpoint, which verifies with the audit key
    audit_key = load_pem_public_key(app.signing_public_key_path.read_bytes())
    assert checkpoint.verify(v2.audit_checkpoint, audit_key, app.settings.audit.origin).size > 0
    # every file is de-identified: no name, ID or birth date of either patient in the workspace
    needles = [
        v.lower().encode() for p in (ALICE, BOB) for v in (p.patient_id, p.birth_date, p.name.split("^")[0])
    ]
    assert plaintext_hits(_workspace(app.settings.home), needles) == []
    out = dcmread(_workspace(app.settings.home) / "objects" / "sha256" / v2.files[0].sha256)
    assert out.PatientID == v2.files[0].path.split("/")[0] and out.PatientIdentityRemoved == "YES"


def test_the_release_is_audited_with_its_manifest_digest(app, home: Path) -> None:  # type: ignore[no-untyped-def]
    store_datasets(app, ct_series(2, ALICE, seed=3))
    summary = Releaser(app, "cli:test", workers=1).release("one", "local", ReleaseCriteria())
    app.audit.flush()
    exports = [e for e in audit_events(home) if e["event_id"] == "110106" and "one" in e["description"]]
    assert len(exports) == 1 and exports[0]["outcome"] == 0
    detail = exports[0]["objects"][0]
    assert detail["id"] == "one/v1" and detail["detail"]["manifest_sha256"] == summary.manifest_sha256


def test_held_out_studies_never_leave_and_naming_one_is_refused(app, home: Path) -> None:  # type: ignore[no-untyped-def]
    alice, bob = ct_series(3, ALICE, seed=4), ct_series(3, BOB, seed=5)
    store_datasets(app, alice + bob)
    held_study = str(alice[0].StudyInstanceUID)
    assert holdout.add_study(app, "cli:test", held_study)
    summary = Releaser(app, "cli:test", workers=1).release("cohort", "local", ReleaseCriteria())
    assert summary.instances == 3 and summary.excluded_held_out == 1
    assert _manifest(app, "cohort", 1).counts["held_out_excluded_studies"] == 1

    with pytest.raises(ConfigError, match="is held out"):
        Releaser(app, "cli:test", workers=1).release(
            "cohort", "local", ReleaseCriteria(studies=(held_study,))
        )
    refused = [e for e in audit_events(home) if e["event_id"] == "110106" and e["outcome"] == 8]
    assert [o["id"] for o in refused[0]["objects"]] == [held_study]
    # a patient held out: every study of theirs, now and later
    holdout.add_patient(app, "cli:test", BOB.patient_id)
    store_datasets(app, ct_series(2, BOB, seed=6))
    with pytest.raises(ConfigError, match="no stored instance matches"):
        Releaser(app, "cli:test", workers=1).release("cohort", "local", ReleaseCriteria())


def test_a_fraction_holds_out_the_same_studies_for_the_same_seed(app) -> None:  # type: ignore[no-untyped-def]
    for seed in range(10):
        store_datasets(app, ct_series(1, FakePatient(patient_id=f"P{seed}"), seed=seed))
    chosen = holdout.add_fraction(app, "cli:test", 0.3, 7, "CT")
    assert 0 < len(chosen) < 10
    assert holdout.add_fraction(app, "cli:test", 0.3, 7, "CT") == []  # the same ones: held out already
    assert {h.study_uid for h in holdout.list_held_out(app)} == set(chosen)


def test_criteria_choose_instances_and_a_quarantined_one_stays_counted(app, home: Path) -> None:  # type: ignore[no-untyped-def]
    with open(home / "appliance.toml", "a") as config:
        config.write('\n[deidentify.profiles.keep-station]\noptions = ["retain_device_identity"]\n')
    reopened = open_appliance(home)
    try:
        ct = ct_series(3, ALICE, seed=7)
        ct[1].StationName = "Quixlebottom"  # the patient's name where the profile keeps the value
        mr = ct_series(2, ALICE, seed=8)
        for ds in mr:
            ds.Modality, ds.StudyDate = "MR", "20240101"
        store_datasets(reopened, ct + mr)
        criteria = ReleaseCriteria(modalities=("CT",), profile="keep-station")
        summary = Releaser(reopened, "cli:test", workers=1).release("ct-only", "local", criteria)
        assert summary.instances == 2
        assert summary.quarantined == {"PHI gate: PatientName in (0008,1010) StationName": 1}
        manifest = _manifest(reopened, "ct-only", 1)
        assert {f.modality for f in manifest.files} == {"CT"}
        assert manifest.counts["quarantined"] == summary.quarantined

        from datetime import date

        dated = ReleaseCriteria(since=date(2023, 1, 1), until=date(2024, 6, 30))
        assert Releaser(reopened, "cli:test", workers=1).release("dated", "local", dated).instances == 2
    finally:
        reopened.close()


def test_an_unfinished_version_is_resumed_only_by_the_same_criteria(app) -> None:  # type: ignore[no-untyped-def]
    from appliance.db.tables import DatasetRelease, ReleaseState

    store_datasets(app, ct_series(3, ALICE, seed=9))
    releaser = Releaser(app, "cli:test", workers=1)
    row, resumed = releaser.prepare("half", "local", ReleaseCriteria(), releaser_profile(app))
    assert not resumed and row.state == ReleaseState.BUILDING  # as a run killed before any upload leaves it
    with pytest.raises(ConfigError, match="unfinished"):
        releaser.release("half", "local", ReleaseCriteria(modalities=("MR",)))
    summary = releaser.release("half", "local", ReleaseCriteria())
    assert summary.resumed and summary.version == 1 and summary.instances == 3
    with app.session() as session:
        assert session.get(DatasetRelease, row.id).state == ReleaseState.COMPLETE


def releaser_profile(app):  # type: ignore[no-untyped-def]
    from anonymizer.profile import named_profile

    return named_profile("research")


def test_datasets_commands_print_json_and_the_signing_key(home: Path, tmp_path: Path) -> None:

    app = open_appliance(home)
    try:
        store_datasets(app, ct_series(2, ALICE, seed=10))
    finally:
        app.close()
    result = run_cli(home, "datasets", "release", "demo", "--to", "local", "--json")
    shown = json.loads(result.stdout)
    assert shown["name"] == "demo" and shown["version"] == 1 and shown["instances"] == 2
    assert shown["quarantined"] == {} and shown["manifest"].endswith("datasets/demo/v1/manifest.dsse.json")
    key = run_cli(home, "datasets", "signing-key").stdout
    manifest = verify_manifest(Path(shown["manifest"]).read_bytes(), [load_pem_public_key(key.encode())])
    assert manifest.name == "demo"
    listed = json.loads(run_cli(home, "datasets", "list", "--json").stdout)
    assert [(r["name"], r["version"], r["state"]) for r in listed] == [("demo", 1, "complete")]
    statement = json.loads(run_cli(home, "datasets", "show", "demo").stdout)["statement"]
    assert statement["predicate"]["counts"]["instances"] == 2


def test_workspace_commands_add_list_and_remove(home: Path, tmp_path: Path) -> None:

    run_cli(home, "workspaces", "add", "lab", "--dir", str(tmp_path / "lab"))
    listed = json.loads(run_cli(home, "workspaces", "list", "--json").stdout)
    assert [(w["name"], w["kind"]) for w in listed] == [("lab", "dir"), ("local", "dir")]
    both = run_cli(home, "workspaces", "add", "x", "--dir", "a", "--s3", "s3://b/c", check=False)
    assert both.returncode == 1 and "exactly one of" in both.stderr
    run_cli(home, "workspaces", "remove", "lab")
    assert "lab" not in run_cli(home, "workspaces", "list").stdout
    missing = run_cli(home, "datasets", "release", "d", "--to", "lab", check=False)
    assert missing.returncode == 1 and "no workspace named lab (known: local)" in missing.stderr


def test_a_request_runs_only_once_approved_and_records_how_it_ended(app, home: Path) -> None:  # type: ignore[no-untyped-def]
    """A researcher's cohort query waits for an admin; refused, it never runs; approved, it
    releases (``datasets run-request``, as the console starts it) and records the version; one
    that fails records why, and runs again once the cause is gone."""
    store_datasets(app, ct_series(3, ALICE, seed=1))
    rex, ada = Participant("rex", is_requestor=True), Participant("ada", is_requestor=True)
    cohort = ReleaseCriteria(modalities=("CT",))
    with pytest.raises(ConfigError, match="at least 10 characters"):
        requests.ask(app, rex, "ct-cohort", "local", cohort, "why")
    with pytest.raises(ConfigError, match="cannot name studies"):
        requests.ask(
            app, rex, "ct-cohort", "local", ReleaseCriteria(studies=("1.2.3",)), "lesion model training"
        )
    asked = requests.ask(app, rex, "ct-cohort", "local", cohort, "lesion model training")
    with pytest.raises(ConfigError, match="only an approved one runs"):
        requests.fulfil(app, asked.id, workers=1)
    refused = requests.ask(app, rex, "everything", "local", ReleaseCriteria(), "all of it, please")
    with pytest.raises(ConfigError, match="says why"):
        requests.decide(app, ada, refused.id, approve=False)
    requests.decide(app, ada, refused.id, approve=False, note="too broad: name a modality")
    with pytest.raises(ConfigError, match="refused, not pending"):
        requests.decide(app, ada, refused.id, approve=True)

    requests.decide(app, ada, asked.id, approve=True)
    ran = run_cli(home, "datasets", "run-request", str(asked.id), "--workers", "1")
    assert "ct-cohort v1 released" in ran.stdout
    listed = {r["id"]: r for r in json.loads(run_cli(home, "datasets", "requests", "--json").stdout)}
    assert (listed[asked.id]["state"], listed[asked.id]["version"]) == ("released", 1)
    assert (listed[refused.id]["state"], listed[refused.id]["note"]) == (
        "refused",
        "too broad: name a modality",
    )
    assert _manifest(app, "ct-cohort", 1).counts["instances"] == 3

    # an approved request whose workspace is unreachable fails, saying why, and resumes later
    failing = requests.ask(app, rex, "ct-later", "local", cohort, "lesion model validation")
    requests.decide(app, ada, failing.id, approve=True)
    workspace = _workspace(home)
    workspace.rename(workspace.with_name("moved-away"))
    (home / "research-workspace").write_text("not a folder")
    failed = run_cli(home, "datasets", "run-request", str(failing.id), "--workers", "1", check=False)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    row = requests.listed(app)[0]
    assert row.state.value == "failed" and row.note
    (home / "research-workspace").unlink()
    workspace.with_name("moved-away").rename(workspace)
    assert "ct-later v1 released" in run_cli(home, "datasets", "run-request", str(failing.id)).stdout

    events = [e for e in audit_events(home) if e.get("type") == "Release Request"]
    assert [e["description"].split(") ", 1)[1] for e in events] == [
        "asked for", "asked for", "refused: too broad: name a modality", "approved", "released",
        "asked for", "approved", "failed", "released",
    ]  # fmt: skip
    exports = [e for e in audit_events(home) if e["event_id"] == "110106" and e["outcome"] == 0]
    assert exports[0]["participants"][0]["user_id"] == "ada (approving request 1 of rex)"


def test_a_de_identifying_process_killed_stops_the_release_in_one_line_and_it_resumes(
    app,
    home: Path,  # type: ignore[no-untyped-def]
) -> None:
    """A worker killed as it starts (as by the kernel out of memory): one line, no traceback, and
    the same command finishes the same version with every instance."""
    store_datasets(app, ct_series(40, ALICE, size=64, seed=9))
    command = [
        *APPLIANCE,
        "datasets",
        "release",
        "killed",
        "--to",
        "local",
        "--workers",
        "2",
        "--home",
        str(home),
    ]
    release = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    while not (workers := release.children()) and release.poll() is None:
        time.sleep(0.002)
    workers[0].kill()
    _, stderr = release.communicate(timeout=120)
    assert release.returncode == 1 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines() == [
        "Error: a de-identifying process stopped before it answered (killed, or out of memory?): "
        "run the same command again; what was done stays"
    ]
    again = run_cli(home, "datasets", "release", "killed", "--to", "local")
    assert "killed v1 (resumed): 40 instances" in again.stdout
