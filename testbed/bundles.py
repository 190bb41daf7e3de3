"""Signed bundles for tests: the real Model Zoo configs from shared/ with seeded random weights."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from appliance.admin.model_registry import DEMO_DIRECTORY, DEMO_MODEL, DEMO_PUBLISHER
from models.bundle import INFERENCE_CONFIG, Predictor, network_definition
from models.manifest import sign_bundle

SHARED_BUNDLES = Path(__file__).resolve().parents[1].parent / "shared" / "monai-bundles"
PUBLISHER = "test-publisher"


def demo_predictor(device: str) -> Predictor:
    """The bundled demo model, verified against its publisher's shipped public key."""
    key = load_pem_public_key((DEMO_DIRECTORY / f"{DEMO_PUBLISHER}.pub").read_bytes())
    return Predictor(DEMO_DIRECTORY / DEMO_MODEL, {DEMO_PUBLISHER: key}, device)  # type: ignore[dict-item]


def write_public_key(key: Ed25519PrivateKey, path: Path) -> Path:
    path.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return path


def seeded_bundle(
    source: Path, destination: Path, key: Ed25519PrivateKey, edit: Callable[[dict], None] | None = None
) -> Path:
    """Copy a bundle's configs, optionally edit its inference config, save seeded weights, sign it."""
    from monai.bundle import ConfigParser

    bundle = destination / source.name
    shutil.copytree(source, bundle, ignore=shutil.ignore_patterns("models", "manifest.*"))
    config_path = bundle / INFERENCE_CONFIG
    config = json.loads(config_path.read_text())
    if edit:
        edit(config)
        config_path.write_text(json.dumps(config, indent=2))
    torch.manual_seed(0)
    network = ConfigParser({"network_def": network_definition(config)}).get_parsed_content("network_def")
    (bundle / "models").mkdir()
    torch.save(network.state_dict(), bundle / "models" / "model.pt")
    sign_bundle(bundle, key, PUBLISHER)
    return bundle
