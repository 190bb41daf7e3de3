"""Run a bundle's own training workflow (``configs/train.json``, a MONAI bundle config) on a datalist.

The config is the bundle's, as ``python -m monai.bundle run --config_file configs/train.json`` would
run it; only the values a run must set are overridden: where the data and the bundle are, the epochs,
the seed and the device. The epoch records (mean training loss, the validation key metric, seconds)
are collected from the trainer's own events, for the lineage and the tracking server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models.errors import ModelError

TRAIN_CONFIG = "configs/train.json"
_METADATA = "configs/metadata.json"


class TrainingError(ModelError):
    """The bundle has no usable training workflow, or the data cannot feed it."""


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float  # the mean training loss over the epoch's iterations
    validation: float | None  # the validation key metric, when validation ran after this epoch
    seconds: float


@dataclass
class TrainingRun:
    epochs: list[EpochRecord] = field(default_factory=list)
    key_metric: str = ""
    best: float | None = None  # the best validation key metric (its epoch's weights are kept)
    cases: dict[str, int] = field(default_factory=dict)  # labelled training and validation cases
    seconds: float = 0.0


@dataclass(frozen=True)
class TrainingSettings:
    dataset_dir: Path
    epochs: int
    seed: int
    device: str  # "cpu" or "cuda"


def _checked_settings(settings: TrainingSettings) -> None:
    if settings.epochs < 1:
        raise TrainingError(f"--epochs {settings.epochs}: give at least 1")
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda: no CUDA device is visible here; use --device cpu")
    if not (settings.dataset_dir / "datalist.json").is_file():
        raise TrainingError(
            f"{settings.dataset_dir} has no datalist.json: pull a release first (`research pull`)"
        )


def _parser(bundle: Path, settings: TrainingSettings) -> Any:
    from monai.bundle import ConfigParser

    try:
        config = json.loads((bundle / TRAIN_CONFIG).read_text())
    except (OSError, ValueError) as exc:
        raise TrainingError(f"{bundle.name} has no readable {TRAIN_CONFIG}: it cannot be trained") from exc
    parser = ConfigParser(config)
    parser.read_meta(bundle / _METADATA)
    parser.update(
        {
            "bundle_root": str(bundle),
            "dataset_dir": str(settings.dataset_dir),
            "epochs": settings.epochs,
            "seed": settings.seed,
            "device": f"$torch.device('{'cuda:0' if settings.device == 'cuda' else 'cpu'}')",
        }
    )
    return parser


def _watch(trainer: Any, evaluator: Any, run: TrainingRun, on_epoch: Callable[[EpochRecord], None]) -> None:
    from ignite.engine import Events

    losses: list[float] = []
    started = [time.perf_counter()]

    @trainer.on(Events.EPOCH_STARTED)
    def _start(engine: Any) -> None:
        losses.clear()
        started[0] = time.perf_counter()

    @trainer.on(Events.ITERATION_COMPLETED)
    def _loss(engine: Any) -> None:
        output = engine.state.output
        items = output if isinstance(output, list) else [output]
        losses.extend(float(item["loss"]) for item in items if isinstance(item, dict) and "loss" in item)

    @trainer.on(Events.EPOCH_COMPLETED)  # after the config's ValidationHandler, attached before
    def _epoch(engine: Any) -> None:
        validation = None
        if evaluator is not None and evaluator.state.epoch == engine.state.epoch:
            validation = evaluator.state.metrics.get(run.key_metric)
            validation = None if validation is None else float(validation)
        record = EpochRecord(
            engine.state.epoch,
            sum(losses) / len(losses) if losses else float("nan"),
            validation,
            time.perf_counter() - started[0],
        )
        run.epochs.append(record)
        on_epoch(record)


def train(
    bundle: Path, settings: TrainingSettings, on_epoch: Callable[[EpochRecord], None] = lambda _: None
) -> TrainingRun:
    """Run the workflow of ``bundle`` (a copy: its ``models/model.pt`` is read and rewritten)."""
    _checked_settings(settings)
    parser = _parser(bundle, settings)
    run = TrainingRun()
    started = time.perf_counter()
    try:
        for step in parser.get_parsed_content("initialize", default=[]):
            del step  # each item is an expression evaluated for its effect (e.g. the seed)
        trainer = parser.get_parsed_content("train#trainer")
        evaluator = parser.get_parsed_content("validate#evaluator", default=None)
        run.cases = {"training": len(trainer.data_loader.dataset)}
        if evaluator is not None:
            run.cases["validation"] = len(evaluator.data_loader.dataset)
            run.key_metric = evaluator.state.key_metric_name or ""
    except TrainingError:
        raise
    except Exception as exc:  # a bundle's config can raise anything while it is built
        raise TrainingError(f"cannot build {bundle.name}'s training workflow: {exc}") from exc
    if not run.cases["training"]:
        raise TrainingError(f"{settings.dataset_dir}: no training case has a label (a SEG in the release)")
    if evaluator is not None and not run.cases.get("validation"):
        raise TrainingError(
            f"{settings.dataset_dir}: no validation case has a label; release more labelled patients"
        )
    _watch(trainer, evaluator, run, on_epoch)
    try:
        trainer.run()
    except Exception as exc:  # the data or the config: say which step, as a line
        raise TrainingError(f"training stopped at epoch {trainer.state.epoch}: {exc}") from exc
    run.seconds = time.perf_counter() - started
    scores = [e.validation for e in run.epochs if e.validation is not None]
    run.best = max(scores) if scores else None
    return run
