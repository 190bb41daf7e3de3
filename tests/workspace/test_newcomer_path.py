"""The README's research path, whole: a running appliance fed by dcmtk's storescu, one study held
out, ``appliance datasets release demo --to local``, ``research pull``, and ``datalist.json``; and
``research`` running where the appliance's server dependencies are not installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.dcmtk import storescu
from testbed.processes import REPO, run_cli, wait_for
from testbed.synthetic import FakePatient, ct_series, write_series

pytestmark = pytest.mark.slow


def _stored(home: Path) -> int:
    return len([p for p in (home / "store" / "objects").rglob("*.enc")])


def test_storescu_then_release_then_pull(appliance, home: Path, tmp_path: Path) -> None:
    patients = [FakePatient(n, f"PID-{i}", "19800101") for i, n in enumerate(("Ortega^Luz", "Mbeki^Sipho"))]
    series = [ct_series(4, patient, size=32, seed=i) for i, patient in enumerate(patients)]
    held = ct_series(3, FakePatient("Lindqvist^Maja", "PID-9", "19900101"), size=32, seed=9)
    files = write_series(tmp_path / "in", [ds for s in [*series, held] for ds in s])
    assert storescu(appliance.dicom_port, files).returncode == 0
    wait_for(lambda: _stored(home) >= 11, 30, "11 stored instances")

    run_cli(home, "holdout", "add", "--study", str(held[0].StudyInstanceUID))
    assert str(held[0].StudyInstanceUID) in run_cli(home, "holdout", "list").stdout
    released = run_cli(home, "datasets", "release", "demo", "--to", "local")
    assert (
        "demo v1: 8 instances (8 uploaded, 0 already there), 0 quarantined, 1 held-out studies left out"
        in (released.stdout)
    )
    key = tmp_path / "release.pem"
    key.write_text(run_cli(home, "datasets", "signing-key").stdout)
    out = tmp_path / "demo"
    release = f"{home}/research-workspace/demo/v1"
    pulled = subprocess.run(
        [sys.executable, "-m", "workspace.cli", "pull", release, str(out), "--trust", str(key)],
        capture_output=True, text=True, cwd=REPO, timeout=180,
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    datalist = json.loads((out / "datalist.json").read_text())
    assert len(datalist["training"]) == 1 and len(datalist["validation"]) == 1
    assert all((out / entry["image"]).is_file() for side in datalist.values() for entry in side)


_BLOCK_SERVER_PACKAGES = """
import sys
BLOCKED = ("fastapi", "uvicorn", "sqlalchemy", "sqlmodel", "alembic", "pynetdicom", "argon2", "pyotp",
           "prometheus_client", "pydantic_settings", "dicomweb_client", "appliance")

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed here")
        return None

sys.meta_path.insert(0, Block())
sys.argv = ["research", *sys.argv[1:]]
from workspace.cli import research
research()
"""


def test_research_runs_without_the_appliances_server_dependencies(tmp_path: Path) -> None:
    """What ``pip install .`` (without the ``appliance`` extra) gives a researcher: the server
    packages, and the appliance itself, unimportable; ``research`` lists, pulls and verifies."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from anonymizer.release.manifest import Policy, ReleaseFile, ReleaseManifest, manifest_key, object_key
    from anonymizer.release.stores import FolderStore, sha256_hex

    key = Ed25519PrivateKey.generate()
    store = FolderStore(tmp_path / "ws")
    files = []
    for series in (ct_series(3, seed=1), ct_series(3, FakePatient(patient_id="P2"), seed=2)):
        for path in write_series(tmp_path / "src" / str(series[0].SeriesInstanceUID), series):
            data = path.read_bytes()
            entry = ReleaseFile(
                f"{series[0].PatientID}/{series[0].StudyInstanceUID}/{series[0].SeriesInstanceUID}/{path.name}",
                sha256_hex(data), len(data), "CT", str(series[0].SOPClassUID),
            )  # fmt: skip
            store.put(object_key(entry.sha256), data, entry.sha256)
            files.append(entry)
    policy = Policy("research", [], {}, "table", "0" * 64, [])
    created = "2026-12-02T00:00:00+00:00"
    manifest = ReleaseManifest("demo", 1, None, created, "test", policy, {"instances": 6}, "", tuple(files))
    envelope = manifest.sign(key)
    store.put(manifest_key("demo", 1), envelope, sha256_hex(envelope))
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))

    def research(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _BLOCK_SERVER_PACKAGES, *args], capture_output=True,
                              text=True, cwd=REPO, timeout=180)  # fmt: skip

    assert "demo/v1  6 instances" in research("ls", str(tmp_path / "ws"), "--trust", str(pem)).stdout
    pulled = research("pull", f"{tmp_path}/ws/demo/v1", str(tmp_path / "out"), "--trust", str(pem))
    assert pulled.returncode == 0 and "6 files verified (6 downloaded)" in pulled.stdout, pulled.stderr
    verified = research("verify", str(tmp_path / "out"), "--trust", str(pem))
    assert "signature and 6 files verified" in verified.stdout, verified.stderr
