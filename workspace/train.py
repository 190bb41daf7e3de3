"""``research train``: a pulled release, the bundle's own training workflow, a candidate version.

The pulled copy is verified first (signature, every file), so the lineage names a release the
researcher checked: its name, version and the SHA-256 of its signed manifest, which the appliance
matches against the releases it made.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from models.lineage import Lineage, ReleaseRef
from models.training.candidate import make_candidate
from models.training.workflow import TrainingRun, TrainingSettings
from workspace.errors import ResearchError
from workspace.pull import ENVELOPE, verify_copy
from workspace.tracking import tracked


def release_of(dataset_dir: Path, trusted: list[Ed25519PublicKey]) -> ReleaseRef:
    manifest = verify_copy(dataset_dir, trusted)
    digest = hashlib.sha256((dataset_dir / ENVELOPE).read_bytes()).hexdigest()
    return ReleaseRef(manifest.name, manifest.version, digest)


def train_candidate(
    dataset_dir: Path,
    bundle: Path,
    out: Path,
    trusted: list[Ed25519PublicKey],
    settings: TrainingSettings,
    tracking: str,
    version: str | None = None,
) -> tuple[Lineage, TrainingRun, str]:
    """Train ``bundle`` on the pulled release into ``out``; return the lineage, the run and the
    MLflow run's id."""
    if not bundle.is_dir():
        raise ResearchError(f"{bundle} is not a bundle folder")
    release = release_of(dataset_dir, trusted)
    with tracked(tracking, bundle.name, release, dataset_dir, settings, str(bundle)) as run:
        lineage, training = make_candidate(bundle, out, release, settings, version, run.epoch)
        run.candidate(out, lineage)
    return lineage, training, run.run_id
