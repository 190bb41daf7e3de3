"""``appliance models optimize``: a version derived for ONNX Runtime (fp32, int8), its equivalence
with its source on the held-out series, signed and kept, and the promotion gate that reads it."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
import torch

from appliance.admin import model_registry
from appliance.context import open_appliance
from appliance.modelops import optimize as optimize_module
from appliance.modelops import promotion, reports
from appliance.modelops.held_out import series_volume
from appliance.research.holdout import add_study
from appliance.research.releases import Releaser
from appliance.research.selection import ReleaseCriteria
from appliance.storage.writer import NewObject, ObjectWriter
from dicom_gateway.received import instance_from_part10
from models.bundle import Predictor
from models.onnx_backend import ONNX_MODEL
from testbed.labelled import held_out_patient, labelled_volume
from testbed.processes import run_cli
from testbed.research import store_datasets


@pytest.fixture
def site(home: Path) -> Iterator:
    """The demo model active, and two phantom CT studies stored and held out."""
    app = open_appliance(home)
    writer = ObjectWriter(app)
    for seed in (1, 2):
        datasets, _, _ = labelled_volume(seed, held_out_patient(seed))
        for dataset in datasets:
            buffer = BytesIO()
            dataset.save_as(buffer, enforce_file_format=True)
            writer.write(NewObject.received(instance_from_part10(buffer.getvalue(), "SCU", "APPLIANCE")))
        add_study(app, "tester", str(datasets[0].StudyInstanceUID))
    writer.close()
    (active,) = model_registry.list_models(app)
    yield app, active
    app.close()


def test_an_onnx_version_is_derived_signed_equivalent_and_promotable(site, home):
    app, active = site
    result = run_cli(home, "models", "optimize", active.name, active.version, "--json")
    report = json.loads(result.stdout)
    derived = f"{active.version}+onnxruntime.fp32"
    assert report["derived"] == derived and report["source"] == active.version and report["passed"]
    assert len(report["cases"]) == 2 and report["largest_logit_difference"] < 1e-3
    lesion = [case["volume_ml"]["lesion"]["source"] for case in report["cases"]]
    assert max(lesion) > 0  # the source found lesions: agreement is not that of two empty volumes
    assert all(case["dice_agreement"]["lesion"] >= 0.99 for case in report["cases"])
    model = model_registry.find(app, active.name, derived)
    assert model.publisher == model_registry.OWN_PUBLISHER and model.state.value == "staged"
    assert (Path(model.path) / ONNX_MODEL).is_file() and not (
        Path(model.path) / "models" / "model.pt"
    ).exists()
    (row,) = reports.reports(app, active.name, derived)
    assert reports.opened(app, row) == report  # signed, kept, and what the command printed
    assert "passed vs" in reports.summary(app, active.name, derived)
    promotion.promote(app, "tester", active.name, derived)  # the gate reads the equivalence report
    assert model_registry.find(app, active.name, derived).state.value == "active"
    # the derived version runs in the appliance's own predictor, on the bundle's own inferer
    trusted = model_registry.trusted_publishers(app)
    volume = series_volume(app, report["cases"][0]["series_uid"])
    ours = Predictor(Path(model.path), trusted, "cpu")
    theirs = Predictor(Path(active.path), trusted, "cpu")
    assert (ours.predict(volume) == theirs.predict(volume)).mean() > 0.999


def test_int8_is_calibrated_on_the_held_out_windows_and_smaller(site):
    app, active = site
    row = optimize_module.optimize(app, "tester", active.name, active.version, "onnxruntime", "int8")
    report = reports.opened(app, row)
    assert report["precision"] == "int8" and len(report["cases"]) == 2
    assert report["model_bytes"]["derived"] < report["model_bytes"]["source"]["model.pt"] / 2
    assert row.passed == (not report["failed_classes"])
    assert all(
        (label in report["failed_classes"]) == (dice < report["min_dice"])
        for case in report["cases"]
        for label, dice in case["dice_agreement"].items()
    )


def test_a_perturbed_network_is_not_equivalent_and_cannot_be_activated(site, monkeypatch):
    app, active = site
    export = optimize_module.export

    def perturbed(network: torch.nn.Module, sample: torch.Tensor, path: Path) -> None:
        broken = copy.deepcopy(network)
        with torch.no_grad():
            for parameter in broken.parameters():
                parameter.mul_(-1.0)  # the exported network is not the source's
        export(broken, sample, path)

    monkeypatch.setattr(optimize_module, "export", perturbed)
    row = optimize_module.optimize(app, "tester", active.name, active.version, "onnxruntime", "fp32")
    report = reports.opened(app, row)
    assert not row.passed and report["failed_classes"] == ["lesion"]
    assert "NOT EQUIVALENT: lesion" in reports.readable(report)
    derived = f"{active.version}+onnxruntime.fp32"
    with pytest.raises(model_registry.ModelRefused, match="failed its validation"):
        promotion.promote(app, "tester", active.name, derived)
    assert model_registry.find(app, active.name, derived).state.value == "staged"


def test_without_held_out_series_or_with_an_unknown_version_the_refusal_is_one_line(home):
    (active,) = json.loads(run_cli(home, "models", "list", "--json").stdout)
    result = run_cli(home, "models", "optimize", active["name"], active["version"], check=False)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "no held-out series" in result.stderr
    unknown = run_cli(home, "models", "optimize", active["name"], "9.9.9", check=False)
    assert unknown.returncode == 1 and len(unknown.stderr.strip().splitlines()) == 1
    assert "9.9.9" in unknown.stderr


def test_tensorrt_without_a_gpu_and_fp16_for_onnxruntime_are_refused_in_one_line(home):
    (active,) = json.loads(run_cli(home, "models", "list", "--json").stdout)
    name, version = active["name"], active["version"]
    refusals = {
        ("--backend", "tensorrt", "--precision", "fp16"): "CUDA GPU",
        ("--backend", "onnxruntime", "--precision", "fp16"): "not built",
        ("--backend", "onnxruntime", "--device", "cuda"): "CUDA GPU",
    }
    for options, reason in refusals.items():
        if torch.cuda.is_available() and reason == "CUDA GPU":
            continue  # on a GPU host these run (test_on_a_gpu_... below)
        result = run_cli(home, "models", "optimize", name, version, *options, check=False)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, options
        assert reason in result.stderr, (options, result.stderr)


def _tensorrt_here() -> bool:
    import onnxruntime

    return torch.cuda.is_available() and "TensorrtExecutionProvider" in onnxruntime.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not _tensorrt_here(), reason="no CUDA GPU with ONNX Runtime's TensorRT provider here")
def test_on_a_gpu_tensorrt_fp16_and_int8_are_equivalent_and_cache_their_engines(site):
    app, active = site
    for precision in ("fp16", "int8"):
        row = optimize_module.optimize(app, "tester", active.name, active.version, "tensorrt", precision)
        report = reports.opened(app, row)
        assert (report["backend"], report["precision"]) == ("tensorrt", precision)
        assert row.passed, report  # Dice >= the protocol's threshold per class, on every held-out series
        derived = model_registry.find(app, active.name, f"{active.version}+tensorrt.{precision}")
        engines = Path(derived.path).with_name(f".{Path(derived.path).name}.engines")
        assert any(engines.rglob("*.engine"))  # built once for this GPU and TensorRT version, kept
    cuda = optimize_module.optimize(app, "tester", active.name, active.version, "onnxruntime", "fp32", "cuda")
    assert cuda.passed


def test_int8_can_be_calibrated_on_a_release_and_checked_on_the_held_out_series(site, monkeypatch):
    app, active = site
    datasets, _, _ = labelled_volume(3, held_out_patient(3))  # a third study, not held out
    store_datasets(app, datasets)
    Releaser(app, "tester", workers=1).release("calibration", "local", ReleaseCriteria())
    read = []
    monkeypatch.setattr(
        optimize_module, "series_volume", lambda app, uid: read.append(uid) or series_volume(app, uid)
    )
    row = optimize_module.optimize(
        app, "tester", active.name, active.version, "onnxruntime", "int8", calibration="calibration"
    )
    report = reports.opened(app, row)
    assert report["calibration"] == "dataset calibration v1 (1 series)"
    released = str(datasets[0].SeriesInstanceUID)
    assert released in read  # its windows calibrated the scales
    assert released not in {case["series_uid"] for case in report["cases"]}  # the check is on the held-out
    assert len(report["cases"]) == 2


def test_calibration_is_refused_without_int8_or_an_unknown_dataset(site):
    app, active = site
    with pytest.raises(model_registry.ModelRefused, match="for int8"):
        optimize_module.optimize(app, "tester", active.name, active.version, "onnxruntime", "fp32", None, "x")
    with pytest.raises(model_registry.ModelRefused, match="no complete release of a dataset nothing"):
        optimize_module.optimize(
            app, "tester", active.name, active.version, "onnxruntime", "int8", None, "nothing"
        )
