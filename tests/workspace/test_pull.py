"""``research pull`` and ``research verify`` as a researcher runs them: a release from the appliance,
checked file by file, resumed after interruption, refused with the offending file's name."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from anonymizer.release.manifest import manifest_key, object_key
from appliance.context import open_appliance
from appliance.research.releases import Releaser, export_public_pem
from appliance.research.selection import ReleaseCriteria
from models.bundle import Segment
from models.codes import code_for
from models.identity import ModelIdentity
from models.results import write_results
from models.volume import build_volume
from testbed.processes import REPO
from testbed.research import store_datasets
from testbed.synthetic import FakePatient, ct_series
from tests.support.datasets import read_back

RESEARCH = [sys.executable, "-m", "workspace.cli"]
PATIENTS = [
    FakePatient(name, f"PID-{n}", "19700101")
    for n, name in enumerate(("Quill^Ada", "Brandt^Otto", "Varga^Ilona"))
]


def research(*args: str, check: bool = True, limit_bytes: int | None = None) -> subprocess.CompletedProcess:
    def limited() -> None:  # a disk that fills up: writes past this size fail (EFBIG)
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    result = subprocess.run(
        [*RESEARCH, *args], capture_output=True, text=True, cwd=REPO, timeout=180, preexec_fn=limited
    )
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A home with three patients' CT (one with an AI SEG), released as demo v1 to its folder
    workspace with the results; the release key's PEM; the SEG's labels on the first series' grid,
    and that series' Hounsfield units."""
    from appliance.home import init_home

    root = tmp_path_factory.mktemp("released")
    home = root / "home"
    init_home(home)
    app = open_appliance(home)
    try:
        # the labelled series is longer than the pull reads ahead at a time (datalist._READ_AHEAD)
        series = [ct_series(12 if n == 0 else 5, p, size=16, seed=n) for n, p in enumerate(PATIENTS)]
        for datasets in series:
            store_datasets(app, datasets)
        volume = build_volume(read_back(series[0]))
        labels = np.zeros(volume.array.shape, np.uint8)
        frames = volume.frame_images(labels)
        frames[1, 2:6, 3:9] = 1
        frames[3, 8:12, 1:4] = 2
        segments = (Segment(1, "spleen", code_for("spleen")), Segment(2, "liver", code_for("liver")))
        results = write_results(volume, labels, segments, ModelIdentity("demo", "1", ""))
        store_datasets(app, [results.segmentation, results.report], calling=app.settings.dicom.ae_title)
        Releaser(app, "cli:test", workers=1).release("demo", "local", ReleaseCriteria(with_results="all"))
        key = root / "release-key.pem"
        key.write_text(export_public_pem(app))
    finally:
        app.close()
    return home / "research-workspace", key, labels, volume.array


def test_pull_verifies_writes_volumes_with_their_labels_and_resumes(released, tmp_path: Path) -> None:
    workspace, key, labels, hounsfield = released
    out = tmp_path / "pulled"
    result = research("pull", f"{workspace}/demo/v1", str(out), "--trust", str(key))
    assert "demo v1: 24 files verified (24 downloaded)" in result.stdout
    datalist = json.loads((out / "datalist.json").read_text())
    entries = datalist["training"] + datalist["validation"]
    assert len(entries) == 3 and datalist["training"] and datalist["validation"]
    patients = {side: {e["patient"] for e in datalist[side]} for side in datalist}
    assert not patients["training"] & patients["validation"]  # split by patient
    labelled = [e for e in entries if "label" in e]
    assert len(labelled) == 1
    image = nib.load(out / labelled[0]["image"])
    label = nib.load(out / labelled[0]["label"])
    assert image.shape == labels.shape and np.allclose(image.affine, label.affine)
    assert np.array_equal(np.asarray(label.dataobj), labels)  # the SEG, back on its series' grid
    assert image.get_data_dtype() == np.int16 and np.array_equal(np.asarray(image.dataobj), hounsfield)
    # interrupted: a file lost and one cut short; the same command fetches only those
    files = sorted((out / "files").rglob("*.dcm"))
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes()[:100])
    again = research("pull", f"{workspace}/demo/v1", str(out), "--trust", str(key))
    assert "24 files verified (2 downloaded)" in again.stdout
    assert (
        "demo v1: signature and 24 files verified" in research("verify", str(out), "--trust", str(key)).stdout
    )


def test_a_full_disk_stops_the_pull_in_one_line_and_the_same_command_resumes(
    released, tmp_path: Path
) -> None:
    workspace, key, *_ = released
    out = tmp_path / "pulled"
    full = research(
        "pull", f"{workspace}/demo/v1", str(out), "--trust", str(key), check=False, limit_bytes=4000
    )
    assert "no room left to write" in _one_line_error(full) and "run the same command again" in full.stderr
    assert (
        "24 files verified" in research("pull", f"{workspace}/demo/v1", str(out), "--trust", str(key)).stdout
    )


def test_a_volume_worker_that_dies_stops_the_pull_in_one_line_and_the_same_command_resumes(
    released, tmp_path: Path
) -> None:
    """The process writing the volumes killed (as by the kernel out of memory) as soon as it starts:
    the pull says so in one line, keeps the files it verified, and the same command finishes."""
    import psutil

    workspace, key, *_ = released
    out = tmp_path / "pulled"
    args = [*RESEARCH, "pull", f"{workspace}/demo/v1", str(out), "--trust", str(key)]
    pull = psutil.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    while not (workers := pull.children()) and pull.poll() is None:
        time.sleep(0.002)
    for worker in workers:
        worker.kill()
    _, stderr = pull.communicate(timeout=180)
    failed = subprocess.CompletedProcess(args, pull.returncode, "", stderr)
    assert "the process writing the NIfTI volumes stopped" in _one_line_error(failed)
    again = research("pull", f"{workspace}/demo/v1", str(out), "--trust", str(key))
    assert "24 files verified" in again.stdout and (out / "datalist.json").is_file()
    assert "(24 downloaded)" not in again.stdout  # what the first run verified stayed


def test_the_seg_is_fetched_before_the_series_it_labels(released) -> None:
    """A series' volume is written as soon as its files are in: the SEG that labels it comes first."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from anonymizer.release.manifest import verify_manifest
    from workspace.datalist import SEG_CLASS, fetch_order

    workspace, key, *_ = released
    manifest = verify_manifest(
        (workspace / manifest_key("demo", 1)).read_bytes(), [load_pem_public_key(key.read_bytes())]
    )
    order = fetch_order(manifest)
    assert sorted(order, key=lambda e: e.path) == sorted(manifest.files, key=lambda e: e.path)
    assert order[0].sop_class == SEG_CLASS and manifest.files[0].sop_class != SEG_CLASS


def test_files_read_ahead_make_the_same_volume_and_are_let_go(tmp_path: Path) -> None:
    """Files of a series read while the rest downloads (in the worker; here in this process) give
    the volume that reading them all at the end gives, and are not kept once it is written."""
    from workspace import datalist

    paths = []
    for n, ds in enumerate(ct_series(10, PATIENTS[0], size=16, seed=5)):
        paths.append(tmp_path / "files" / f"{n}.dcm")
        paths[-1].parent.mkdir(exist_ok=True)
        ds.save_as(paths[-1], enforce_file_format=True)
    at_end = datalist.write_volume(tmp_path / "end", datalist.SeriesFiles("p", "s", "a", tuple(paths)), ())
    datalist.read_ahead(tuple(paths[:8]))
    ahead = datalist.write_volume(tmp_path / "ahead", datalist.SeriesFiles("p", "s", "a", tuple(paths)), ())
    assert not datalist._read_ahead
    first, second = (
        nib.load(root / w.image) for root, w in ((tmp_path / "end", at_end), (tmp_path / "ahead", ahead))
    )
    assert np.array_equal(np.asarray(first.dataobj), np.asarray(second.dataobj))
    assert np.array_equal(first.affine, second.affine)


def _copy(workspace: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "workspace"
    shutil.copytree(workspace, copy)
    return copy


def _first_object(copy: Path) -> tuple[str, Path]:
    envelope = json.loads((copy / manifest_key("demo", 1)).read_text())
    import base64

    statement = json.loads(base64.b64decode(envelope["payload"]))
    first = statement["predicate"]["files"][0]
    return first["path"], copy / object_key(first["sha256"])


@pytest.mark.parametrize("fault", ["altered", "removed", "added", "untrusted", "tampered"])
def test_a_release_that_is_not_as_signed_is_refused(released, tmp_path: Path, fault: str) -> None:
    workspace, key, *_ = released
    copy = _copy(workspace, tmp_path)
    path, stored = _first_object(copy)
    if fault == "altered":
        data = bytearray(stored.read_bytes())
        data[-1] ^= 0xFF
        stored.write_bytes(bytes(data))
        expected = f"{path}: its bytes in the workspace do not match the manifest"
    elif fault == "removed":
        stored.unlink()
        expected = f"{path}: missing from the workspace"
    elif fault == "added":
        (copy / "datasets/demo/v1/extra.dcm").write_bytes(b"not in the manifest")
        expected = "datasets/demo/v1/extra.dcm is in the release's prefix but not in its manifest"
    elif fault == "untrusted":
        other = (
            Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
        key = tmp_path / "other.pem"
        key.write_bytes(other)
        expected = "signature does not verify with the trusted key"
    else:
        manifest = copy / manifest_key("demo", 1)
        envelope = json.loads(manifest.read_text())
        import base64

        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["predicate"]["counts"]["instances"] += 1
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
        manifest.write_text(json.dumps(envelope))
        expected = "signature does not verify with the trusted key"
    out = tmp_path / "pulled"
    result = research("pull", f"{copy}/demo/v1", str(out), "--trust", str(key), check=False)
    assert expected in _one_line_error(result)
    assert not (out / "datalist.json").exists()


def test_a_pulled_copy_changed_afterwards_fails_verification(released, tmp_path: Path) -> None:
    workspace, key, *_ = released
    out = tmp_path / "pulled"
    research("pull", f"{workspace}/demo/v1", str(out), "--trust", str(key))
    victim = sorted((out / "files").rglob("*.dcm"))[2]
    victim.write_bytes(victim.read_bytes() + b"x")
    name = victim.relative_to(out).as_posix()
    assert f"{name} does not match" in _one_line_error(
        research("verify", str(out), "--trust", str(key), check=False)
    )
    victim.unlink()
    (out / "files" / "stray.dcm").write_bytes(b"x")
    assert "is missing" in _one_line_error(research("verify", str(out), "--trust", str(key), check=False))


def test_bad_arguments_get_one_line(released, tmp_path: Path) -> None:
    workspace, key, *_ = released
    assert "name a release as WORKSPACE/NAME/vN" in _one_line_error(
        research("pull", str(workspace), str(tmp_path / "x"), "--trust", str(key), check=False)
    )
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text("hello")
    assert "is not a PEM public key" in _one_line_error(
        research("pull", f"{workspace}/demo/v1", str(tmp_path / "x"), "--trust", str(not_a_key), check=False)
    )
    assert "no release demo v9" in _one_line_error(
        research("pull", f"{workspace}/demo/v9", str(tmp_path / "x"), "--trust", str(key), check=False)
    )
    listed = research("ls", str(workspace), "--trust", str(key)).stdout
    assert listed.startswith(f"{workspace}/demo/v1  24 instances") and "verified" in listed
