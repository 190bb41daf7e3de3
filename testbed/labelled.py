"""Phantom CT series with their ground truth as a DICOM SEG: labelled cases for the retraining loop's
tests and benchmarks (training labels in a release, reference labels of held-out series)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset

from models.bundle import Segment
from models.codes import code_for
from models.identity import ModelIdentity
from models.results import write_results
from models.volume import Volume, build_volume
from testbed.phantom import make_phantom
from testbed.processes import REPO, run_cli
from testbed.synthetic import FakePatient, phantom_series

SPACING = (3.0, 3.0, 4.0)
SHAPE = (112, 80, 24)
LESION = Segment(1, "lesion", code_for("lesion"))


def _read_back(ds: Dataset) -> Dataset:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return dcmread(BytesIO(buffer.getvalue()))


def labelled_volume(seed: int, patient: FakePatient) -> tuple[list[Dataset], Volume, np.ndarray]:
    """A phantom CT series, its volume as the appliance reads it, and the lesions' labels on it."""
    phantom = make_phantom(SHAPE, SPACING, seed=seed, lesion_count=2)
    datasets = phantom_series(phantom.hu, SPACING, patient=patient, seed=seed)
    volume = build_volume([_read_back(ds) for ds in datasets])
    labels = np.zeros(volume.array.shape, np.uint8)
    frames = volume.frame_images(labels)
    for k in range(SHAPE[2]):
        frames[k] = phantom.lesions_mask[:, :, k].T
    return datasets, volume, labels


def labelled_phantom(seed: int, patient: FakePatient) -> tuple[list[Dataset], Dataset]:
    """A phantom CT series and a SEG of its lesions (the ground truth) on the series' grid."""
    datasets, volume, labels = labelled_volume(seed, patient)
    truth = write_results(volume, labels, (LESION,), ModelIdentity("ground truth", "1", ""))
    return datasets, truth.segmentation


def held_out_patient(n: int) -> FakePatient:
    return FakePatient(f"Held^{n}", f"PID-H{n}", "19700101")


@dataclass(frozen=True)
class LabelledSite:
    """An appliance home with labelled phantom studies, some held out with reference labels, the
    rest released as ``demo`` v1 (with their ground truth as AI results) and pulled."""

    home: Path
    release_key: Path
    dataset: Path
    held_studies: list[str]


def research(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "workspace.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=900
    )
    if result.returncode != 0:
        raise RuntimeError(f"research {args[0]} failed: {result.stderr}")
    return result


def labelled_site(root: Path, training: int, held_out: int) -> LabelledSite:
    from appliance.context import open_appliance
    from appliance.home import init_home
    from appliance.research.releases import export_public_pem
    from testbed.research import store_datasets

    home, key = root / "home", root / "release.pem"
    init_home(home)
    app = open_appliance(home)
    held, references = [], []
    try:
        for n in range(training):
            datasets, truth = labelled_phantom(100 + n, FakePatient(f"Train^{n}", f"PID-T{n}", "19700101"))
            store_datasets(app, datasets)
            store_datasets(app, [truth], calling=app.settings.dicom.ae_title)  # an AI result: a label
        for n in range(held_out):
            datasets, truth = labelled_phantom(200 + n, held_out_patient(n))
            store_datasets(app, datasets)
            held.append(str(datasets[0].StudyInstanceUID))
            references.append(root / f"reference-{n}.dcm")
            truth.save_as(references[-1], enforce_file_format=True)
        key.write_text(export_public_pem(app))
    finally:
        app.close()
    for study in held:
        run_cli(home, "holdout", "add", "--study", study)
    if references:
        run_cli(home, "holdout", "labels", "import", *map(str, references))
    run_cli(home, "datasets", "release", "demo", "--to", "local", "--with-results", "all")
    research("pull", f"{home}/research-workspace/demo/v1", str(root / "demo"), "--trust", str(key))
    return LabelledSite(home, key, root / "demo", held)
