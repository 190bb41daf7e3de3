"""Training runs recorded in MLflow, where researchers compare runs: parameters, each epoch's metrics,
the release as the run's input dataset, and the candidate bundle as an artefact.

The tracking store is ``--tracking URI``, else ``MLFLOW_TRACKING_URI``, else ``mlflow.db`` (SQLite)
in the current folder, with the artefacts in ``mlartifacts`` beside it; a tracking server (the
compose file has one) is given as its http URL.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from models.lineage import Lineage, ReleaseRef
from models.training.workflow import EpochRecord, TrainingSettings
from workspace.errors import ResearchError


def tracking_uri(given: str | None) -> str:
    return given or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def _artefact_root(uri: str) -> str | None:
    """Beside a SQLite store, so that a run never writes into the folder it was started from."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
    return None  # a tracking server keeps its own


class TrackedRun:
    """One MLflow run: epochs are logged as they end; the candidate when it is written."""

    def __init__(self, mlflow: Any, run_id: str) -> None:
        self._mlflow = mlflow
        self.run_id = run_id

    def epoch(self, record: EpochRecord) -> None:
        metrics = {"train_loss": record.loss, "epoch_seconds": record.seconds}
        if record.validation is not None:
            metrics["validation_key_metric"] = record.validation
        self._mlflow.log_metrics(metrics, step=record.epoch)

    def candidate(self, bundle: Path, lineage: Lineage) -> None:
        self._mlflow.log_params({"candidate_version": self._version(bundle)})
        if lineage.best_validation is not None:
            self._mlflow.log_metric(f"best_{lineage.key_metric or 'validation'}", lineage.best_validation)
        self._mlflow.log_artifacts(str(bundle), artifact_path="candidate")

    @staticmethod
    def _version(bundle: Path) -> str:
        import json

        return str(json.loads((bundle / "configs" / "metadata.json").read_text()).get("version", ""))


@contextmanager
def tracked(
    uri: str, experiment: str, release: ReleaseRef, dataset_dir: Path, settings: TrainingSettings, parent: str
) -> Iterator[TrackedRun]:
    """An MLflow run for one training; it ends FAILED if the training raises."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the store's schema set-up, not the user's
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.exceptions import MlflowException

    try:
        mlflow.set_tracking_uri(uri)
        if mlflow.get_experiment_by_name(experiment) is None:
            mlflow.create_experiment(experiment, artifact_location=_artefact_root(uri))
        mlflow.set_experiment(experiment)
        run = mlflow.start_run(run_name=f"{experiment} on {release.name} v{release.version}")
    except MlflowException as exc:
        raise ResearchError(f"MLflow tracking at {uri} cannot be used: {exc.message}") from None
    try:
        mlflow.log_params(
            {
                "release": f"{release.name} v{release.version}",
                "release_manifest_sha256": release.manifest_sha256,
                "parent": parent,
                "epochs": settings.epochs,
                "seed": settings.seed,
                "device": settings.device,
            }
        )
        with warnings.catch_warnings():  # MLflow registers the local-file source twice and says so
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(dataset_dir.resolve().as_uri())
        dataset = MetaDataset(
            source, name=f"{release.name} v{release.version}", digest=release.manifest_sha256[:36]
        )
        mlflow.log_input(dataset, context="training")
        yield TrackedRun(mlflow, run.info.run_id)
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run()
