"""The model registry through the CLI: trust, import, refuse, promote, retire, all audited."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from appliance.config import load_settings
from models.manifest import sign_bundle
from testbed.processes import run_cli
from tests.support.inspect import audit_events

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "monai-bundles"


def make_bundle(tmp_path: Path, name: str, key: Ed25519PrivateKey, publisher: str) -> Path:
    path = tmp_path / publisher / name
    shutil.copytree(SHARED / name, path)
    (path / "models").mkdir()
    (path / "models" / "model.pt").write_bytes(b"seeded weights stand-in")
    sign_bundle(path, key, publisher)
    return path


def public_pem(key: Ed25519PrivateKey, path: Path) -> Path:
    path.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return path


def listed_models(home: Path) -> dict[str, dict]:
    return {model["name"]: model for model in json.loads(run_cli(home, "models", "list", "--json").stdout)}


def test_init_installs_the_demo_model_as_the_active_one(home):
    demo = listed_models(home)["lesion_ct_segmentation"]
    assert demo["state"] == "active" and demo["publisher"] == "demo-publisher" and demo["version"] == "1.0.0"
    assert (home / "trusted-publishers" / "demo-publisher.pub").is_file()
    registry = [e["description"] for e in audit_events(home) if e["type"] == "Model Registry"]
    assert registry == ["model publisher trusted", "staged", "activated"]
    (rule,) = load_settings(home).inference.rules  # the routing rule init writes
    assert rule.model == "lesion_ct_segmentation" and rule.modality == ["CT"] and rule.min_slices == 10


@pytest.mark.slow
def test_registry_lifecycle_and_refusals(home, tmp_path):
    key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    run_cli(home, "models", "trust", "zoo", str(public_pem(key, tmp_path / "zoo.pub")))
    spleen = make_bundle(tmp_path, "spleen_ct_segmentation", key, "zoo")
    untrusted = make_bundle(tmp_path, "swin_unetr_btcv_segmentation", stranger, "stranger")
    tampered = make_bundle(tmp_path / "t", "swin_unetr_btcv_segmentation", key, "zoo")
    (tampered / "models" / "model.pt").write_bytes(b"other weights")

    refused = run_cli(home, "models", "import", str(untrusted), check=False)
    assert refused.returncode == 1 and "'stranger' is not trusted" in refused.stderr
    refused = run_cli(home, "models", "import", str(tampered), check=False)
    assert refused.returncode == 1 and "models/model.pt differs" in refused.stderr

    assert "imported spleen_ct_segmentation 0.5.9" in run_cli(home, "models", "import", str(spleen)).stdout
    assert run_cli(home, "models", "import", str(spleen), check=False).returncode == 1  # once only
    run_cli(home, "models", "promote", "spleen_ct_segmentation", "0.5.9")
    listed = listed_models(home)["spleen_ct_segmentation"]
    assert listed["state"] == "active" and listed["publisher"] == "zoo"
    assert (home / "models" / "spleen_ct_segmentation" / "0.5.9" / "configs" / "inference.json").exists()
    run_cli(home, "models", "retire", "spleen_ct_segmentation", "0.5.9")
    assert listed_models(home)["spleen_ct_segmentation"]["state"] == "retired"
    again = run_cli(home, "models", "promote", "spleen_ct_segmentation", "0.5.9", check=False)
    assert again.returncode == 1 and "retired" in again.stderr

    registry = [e for e in audit_events(home) if e["type"] == "Model Registry"]
    assert [e["description"] for e in registry if e["outcome"] == 0][-3:] == [
        "staged",
        "activated",
        "retired",
    ]
    assert sum(1 for e in registry if e["outcome"] != 0) == 3  # two refusals and the repeat import
