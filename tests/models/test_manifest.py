"""Signed manifests on the real Model Zoo bundle configs from shared/ (weights seeded by the test)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.errors import BundleRejected
from models.manifest import MANIFEST, SIGNATURE, sign_bundle, verify_bundle

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "monai-bundles"
PUBLISHER = Ed25519PrivateKey.generate()


@pytest.fixture
def bundle(tmp_path) -> Path:
    path = tmp_path / "spleen_ct_segmentation"
    shutil.copytree(SHARED / "spleen_ct_segmentation", path)
    (path / "models").mkdir()
    (path / "models" / "model.pt").write_bytes(b"seeded weights stand-in " * 100)
    sign_bundle(path, PUBLISHER, "test-publisher")
    return path


def test_signed_bundle_verifies(bundle):
    manifest = verify_bundle(bundle, {"test-publisher": PUBLISHER.public_key()})
    assert manifest.name == "spleen_ct_segmentation" and manifest.version == "0.5.9"
    assert "configs/inference.json" in manifest.files
    assert "models/model.pt" in manifest.files


def test_unsigned_bundle_is_refused(bundle):
    (bundle / SIGNATURE).unlink()
    with pytest.raises(BundleRejected, match="unsigned bundle"):
        verify_bundle(bundle, {"test-publisher": PUBLISHER.public_key()})


def test_modified_file_is_named(bundle):
    config = bundle / "configs" / "inference.json"
    config.write_text(config.read_text().replace("0.5", "0.6"))
    with pytest.raises(BundleRejected, match="configs/inference.json differs"):
        verify_bundle(bundle, {"test-publisher": PUBLISHER.public_key()})


def test_added_file_is_refused(bundle):
    (bundle / "configs" / "extra.py").write_text("import os")
    with pytest.raises(BundleRejected, match="configs/extra.py is not in the signed manifest"):
        verify_bundle(bundle, {"test-publisher": PUBLISHER.public_key()})


def test_untrusted_publisher_and_forged_signature_are_refused(bundle):
    with pytest.raises(BundleRejected, match="'test-publisher' is not trusted"):
        verify_bundle(bundle, {"someone-else": PUBLISHER.public_key()})
    impostor = Ed25519PrivateKey.generate()
    with pytest.raises(BundleRejected, match="does not verify"):
        verify_bundle(bundle, {"test-publisher": impostor.public_key()})
    manifest = (bundle / MANIFEST).read_text().replace('"test-publisher"', '"other"')
    (bundle / MANIFEST).write_text(manifest)
    with pytest.raises(BundleRejected, match="'other' is not trusted"):
        verify_bundle(bundle, {"test-publisher": PUBLISHER.public_key()})
