"""A candidate version: the parent bundle copied, trained by its own workflow, its version bumped,
its changelog and lineage written. Signing is a separate step (``models.manifest.sign_bundle``)."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from models.lineage import Lineage, ParentRef, ReleaseRef
from models.manifest import MANIFEST, METADATA, SIGNATURE
from models.training.workflow import EpochRecord, TrainingError, TrainingRun, TrainingSettings, train

_NOT_COPIED = (MANIFEST, SIGNATURE, "eval", "lineage.json")


def next_version(version: str) -> str:
    """The next minor version (1.0.0 -> 1.1.0): new weights for the same task and interface."""
    parts = version.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise TrainingError(f"version {version!r} is not MAJOR.MINOR[.PATCH]: give --version")
    return f"{parts[0]}.{int(parts[1]) + 1}.0"


def _libraries() -> dict[str, str]:
    import monai
    import numpy
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": numpy.__version__,
    }


def _parent(bundle: Path) -> ParentRef:
    try:
        manifest = json.loads((bundle / MANIFEST).read_text())
        return ParentRef(
            manifest["name"],
            manifest["version"],
            hashlib.sha256((bundle / MANIFEST).read_bytes()).hexdigest(),
        )
    except (OSError, ValueError, KeyError) as exc:
        raise TrainingError(f"{bundle} is not a signed bundle (no readable {MANIFEST})") from exc


def make_candidate(
    bundle: Path,
    out: Path,
    release: ReleaseRef,
    settings: TrainingSettings,
    version: str | None = None,
    on_epoch: Callable[[EpochRecord], None] = lambda _: None,
) -> tuple[Lineage, TrainingRun]:
    """Train a copy of ``bundle`` into ``out`` (a new folder named for the bundle)."""
    parent = _parent(bundle)
    if out.exists() and any(out.iterdir()):
        raise TrainingError(f"{out} is not empty: give a new folder for the candidate")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(bundle, out, ignore=shutil.ignore_patterns(*_NOT_COPIED))
    started = datetime.now(UTC)
    run = train(out, settings, on_epoch)
    metadata = json.loads((out / METADATA).read_text())
    new_version = version or next_version(str(metadata.get("version", "0.0.0")))
    metadata["version"] = new_version
    best = f", best {run.key_metric} {run.best:.4f}" if run.best is not None else ""
    changelog = {
        new_version: f"retrained from {parent.version} on dataset {release.name} v{release.version} "
        f"(manifest sha256:{release.manifest_sha256[:12]}...) for {settings.epochs} epochs{best}",
        **metadata.get("changelog", {}),
    }
    metadata["changelog"] = changelog
    (out / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
    lineage = Lineage(
        parent=parent,
        release=release,
        epochs=settings.epochs,
        seed=settings.seed,
        device=settings.device,
        trained_at=started.isoformat(timespec="seconds"),
        seconds=round(run.seconds, 2),
        cases=run.cases,
        libraries=_libraries(),
        key_metric=run.key_metric,
        best_validation=run.best,
        per_epoch=[asdict(e) for e in run.epochs],
    )
    lineage.write(out)
    return lineage, run
