"""``appliance models optimize``: a version derived from another for ONNX Runtime or TensorRT,
and the equivalence report that decides whether it may be activated.

The derived version is the source bundle with its network replaced by an ONNX model (fp32; int8
calibrated on the windows the source network was given on the held-out series; for TensorRT also
fp16, a precision TensorRT's engine takes), versioned ``SOURCE+BACKEND.PRECISION``, made and checked
on the device it will run on (a TensorRT version on a CUDA GPU, its engine built there), signed by
this appliance (its signing key, trusted as the publisher ``this-appliance``) and imported staged.
Both versions then segment every held-out series (no label is needed: the source version's labels
are the reference) and the derived one must agree per class: Dice of the two label volumes at least
the source protocol's ``equivalence.min_dice`` (0.99 unless it says otherwise) on every series. The
report also gives each class's volume in both, the largest logit difference on the very windows
both networks were given, the model files' sizes and seconds per series. It is signed, kept as the
derived version's validation against its source, and audited, so ``models promote`` accepts a
derived version only with a passing report against the active version, as it does any other.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from appliance.admin.model_registry import (
    OWN_PUBLISHER,
    ModelRefused,
    find,
    import_bundle,
    trusted_publishers,
)
from appliance.context import Appliance, report_signing_key
from appliance.db.tables import ModelValidation
from appliance.errors import NotFound
from appliance.modelops.held_out import held_out_series, series_volume
from appliance.modelops.reports import keep
from appliance.research.releases import released_series
from models.bundle import Predictor
from models.errors import BackendUnavailable
from models.manifest import MANIFEST, METADATA, sign_bundle
from models.onnx_backend import BACKENDS, ONNX_MODEL, Backend, export, quantize_int8, require
from models.validation.metrics import label_agreement
from models.validation.protocol import read_protocol
from models.volume import Volume

_CALIBRATION_BATCHES = 16  # window batches kept from the source run to calibrate int8 on
HOLDOUT = "holdout"  # calibrate on the held-out series (the default), else on a dataset release


class _Tap(torch.nn.Module):
    """What the sliding-window inferer calls: runs ``network``, keeping up to ``keep`` input batches
    and, when ``compare`` is given, the largest absolute difference of its logits from compare's."""

    def __init__(self, network: torch.nn.Module, keep: int = 0, compare: torch.nn.Module | None = None):
        super().__init__()
        self.network, self.keep, self.compare = network, keep, compare
        self.kept: list[np.ndarray] = []
        self.largest_difference = 0.0
        self.comparing_seconds = 0.0

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.network(batch)
        if len(self.kept) < self.keep:
            self.kept.append(np.ascontiguousarray(batch.detach().to(torch.float32).cpu().numpy()))
        if self.compare is not None:
            started = time.perf_counter()
            reference = self.compare(batch)
            difference = (out.float().cpu() - reference.float().cpu()).abs().max().item()
            self.largest_difference = max(self.largest_difference, float(difference))
            self.comparing_seconds += time.perf_counter() - started  # not the derived network's time
        return out


class _SourceRun:
    """The source version on each held-out series: its labels (the reference), its seconds, and
    the window batches its network was given (the first ones, to export with and calibrate on)."""

    def __init__(self, bundle: Path, predictor: Predictor, series: list[tuple[str, str, str | None]]) -> None:
        self.bundle, self.predictor, self.series = bundle, predictor, series
        self.volumes: list[Volume] = []
        self.labels: list[np.ndarray] = []
        self.seconds: list[float] = []
        self.windows: list[np.ndarray] = []

    def add(self, volume: Volume) -> None:
        tap = _Tap(self.predictor.windows, keep=_CALIBRATION_BATCHES - len(self.windows))
        self.predictor.windows = tap
        try:
            started = time.perf_counter()
            self.labels.append(self.predictor.predict(volume))
            self.seconds.append(time.perf_counter() - started)
        finally:
            self.predictor.windows = tap.network
        self.volumes.append(volume)
        self.windows += tap.kept


def _derive(source: Path, destination: Path, version: str, backend: Backend) -> None:
    """The source bundle copied to ``destination`` without its weights, versioned and described."""
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("model.pt", "model.ts", "manifest.*"))
    metadata = json.loads((destination / METADATA).read_text())
    metadata["version"] = version
    metadata["changelog"] = {
        version: f"{backend.source_version} for {backend.backend} ({backend.precision}), "
        "derived on this appliance",
        **metadata.get("changelog", {}),
    }
    (destination / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
    backend.write(destination)


def _device(backend: str, asked: str | None) -> torch.device:
    """Where the derived version is made and checked: where it will run (a GPU for TensorRT; else
    ``asked``, or a GPU when there is one, as the inference process chooses)."""
    if backend == "tensorrt" and asked is None:
        asked = "cuda"
    device = torch.device(asked or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelRefused(
            f"{backend} versions are made on the CUDA GPU they run on, and this machine has none"
        )
    try:
        require(backend, device)
    except BackendUnavailable as exc:
        raise ModelRefused(str(exc)) from None
    return device


def optimize(
    app: Appliance,
    actor: str,
    name: str,
    version: str,
    backend: str,
    precision: str,
    device: str | None = None,
    calibration: str = HOLDOUT,
) -> ModelValidation:
    """Derive, import (staged) and check a version of ``name`` ``version``; return its report.

    ``calibration``: where int8's windows come from: the held-out series (also the equivalence
    check's), or the series of dataset release ``calibration`` (its newest complete version), which
    never holds a held-out study, so the check runs on series the scales were not fitted to."""
    if precision not in BACKENDS.get(backend, ()):
        built = "; ".join(f"{kind} {', '.join(precisions)}" for kind, precisions in BACKENDS.items())
        raise ModelRefused(f"backend {backend} with precision {precision} is not built ({built})")
    if calibration != HOLDOUT and precision != "int8":
        raise ModelRefused(f"--calibration is for int8: {precision} needs no calibration")
    where = _device(backend, device)
    source = find(app, name, version)
    series = held_out_series(app)
    if not series:
        raise ModelRefused(
            "no held-out series to check equivalence on: hold out studies first (`appliance holdout add`)"
        )
    trusted = trusted_publishers(app)
    ours = Predictor(Path(source.path), trusted, where)
    if ours.backend is not None:
        raise ModelRefused(f"{name} {version} is itself derived; optimize its source version")
    run = _SourceRun(Path(source.path), ours, series)
    for uid, _, _ in series:
        run.add(series_volume(app, uid))
    windows, calibrated_on = run.windows, "the held-out series"
    if precision == "int8" and calibration != HOLDOUT:
        windows, calibrated_on = _release_windows(app, ours, calibration)
    derived_version = f"{version}+{backend}.{precision}"
    digest = hashlib.sha256((Path(source.path) / MANIFEST).read_bytes()).hexdigest()
    work = app.settings.home / "models" / f".optimizing-{name}-{derived_version}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        bundle = work / name
        _derive(Path(source.path), bundle, derived_version, Backend(backend, precision, version, digest))
        onnx = bundle / ONNX_MODEL
        export(ours.network, torch.from_numpy(run.windows[0][:1]).to(where), onnx)
        if precision == "int8":
            fp32 = onnx.with_name("model-fp32.onnx")
            onnx.rename(fp32)
            quantize_int8(fp32, onnx, windows)
            fp32.unlink()
        sign_bundle(bundle, report_signing_key(app), OWN_PUBLISHER, name)
        derived = import_bundle(app, actor, bundle)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _check(app, actor, run, Path(derived.path), where, calibrated_on if precision == "int8" else "")


def _release_windows(app: Appliance, predictor: Predictor, dataset: str) -> tuple[list[np.ndarray], str]:
    """Window batches of the source network on dataset release ``dataset``'s series (read from this
    appliance's store), until :data:`_CALIBRATION_BATCHES` are kept; and what they came from."""
    try:
        version, series = released_series(app, dataset)
    except NotFound as exc:
        raise ModelRefused(str(exc)) from None
    run = _SourceRun(Path(), predictor, [])
    used = 0
    for uid in series:
        if len(run.windows) >= _CALIBRATION_BATCHES:
            break
        run.add(series_volume(app, uid))
        used += 1
    if not run.windows:
        raise ModelRefused(f"dataset {dataset} v{version} released no image series to calibrate on")
    return run.windows, f"dataset {dataset} v{version} ({used} series)"


def _check(
    app: Appliance, actor: str, run: _SourceRun, derived_path: Path, device: torch.device, calibrated_on: str
) -> ModelValidation:
    """Run the derived version on the series the source ran on; sign, keep and audit the report."""
    theirs = run.predictor
    derived = Predictor(derived_path, trusted_publishers(app), device)
    protocol = read_protocol(run.bundle, f"{theirs.identity.name} {theirs.identity.version}")
    classes = {segment.number: segment.label for segment in theirs.segments}
    tap = _Tap(derived.windows, compare=theirs.network)
    derived.windows = tap
    cases, failed = [], set()
    for (series_uid, _, modality), volume, labels, seconds in zip(
        run.series, run.volumes, run.labels, run.seconds, strict=True
    ):
        started, tap.comparing_seconds = time.perf_counter(), 0.0
        ours = derived.predict(volume)
        elapsed = time.perf_counter() - started - tap.comparing_seconds
        agreement = label_agreement(ours, labels, classes)
        failed |= {label for label, dice in agreement.items() if dice < protocol.equivalence_min_dice}
        voxel_ml = volume.voxel_volume_ml
        cases.append(
            {
                "series_uid": series_uid,
                "modality": modality,
                "dice_agreement": agreement,
                "volume_ml": {
                    label: {
                        "source": float((labels == n).sum()) * voxel_ml,
                        "derived": float((ours == n).sum()) * voxel_ml,
                    }
                    for n, label in classes.items()
                },
                "seconds": {"source": round(seconds, 3), "derived": round(elapsed, 3)},
            }
        )
    identity, source = derived.identity, theirs.identity
    backend = derived.backend
    assert backend is not None, "a derived version carries its backend"
    sizes = {path.name: path.stat().st_size for path in (run.bundle / "models").glob("model.*")}
    report = {
        "model": identity.name,
        "derived": identity.version,
        "source": source.version,
        "backend": backend.backend,
        "precision": backend.precision,
        "calibration": calibrated_on,  # int8's windows: the held-out series or a release's
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "appliance": app.settings.audit.origin,
        "min_dice": protocol.equivalence_min_dice,
        "cases": cases,
        "largest_logit_difference": tap.largest_difference,
        "model_bytes": {"source": sizes, "derived": (derived_path / ONNX_MODEL).stat().st_size},
        "failed_classes": sorted(failed),
        "passed": not failed,
    }
    row = ModelValidation(
        name=identity.name,
        version=identity.version,
        baseline=source.version,
        passed=not failed,
        cases=len(cases),
        failed_criteria=[
            f"equivalence of {label} (Dice < {protocol.equivalence_min_dice})" for label in sorted(failed)
        ],
        envelope=b"",
        digest="",
    )
    outcome = "equivalent" if not failed else "not equivalent: " + ", ".join(sorted(failed))
    return keep(
        app, actor, report, row, "Model Equivalence",
        f"{identity.name} {identity.version} against its source {source.version} "
        f"on {len(cases)} held-out series: {outcome}",
    )  # fmt: skip
