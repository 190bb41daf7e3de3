"""Inference end to end: storescu -> appliance serve -> demo model -> SEG and SR -> Orthanc.

Also the runner's faults: a model that raises, one that exceeds its timeout, a corrupt instance,
and a series no rule matches each leave a job with a reason, and the worker goes on to the next.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydicom import dcmread
from pydicom.uid import Comprehensive3DSRStorage, SegmentationStorage

from models.volume import build_volume
from testbed.bundles import PUBLISHER, SHARED_BUNDLES, demo_predictor, seeded_bundle, write_public_key
from testbed.dcmtk import storescu
from testbed.phantom import make_phantom
from testbed.processes import ApplianceProcess, OrthancProcess, run_cli, wait_for
from testbed.synthetic import FakePatient, phantom_series, write_series
from tests.support.environments import FAST, INFERENCE
from tests.support.inspect import audit_events, phi_needles, plaintext_hits
from tests.support.seg import dice, seg_mask, sr_volumes_ml

pytestmark = pytest.mark.slow

SPACING = (1.25, 1.25, 2.5)
SHAPE = (192, 160, 40)


def jobs(home: Path) -> list[dict]:
    return json.loads(run_cli(home, "jobs", "--json").stdout)


def finished(home: Path, count: int) -> bool:
    found = jobs(home)
    return len(found) == count and all(job["state"] in ("done", "failed") for job in found)


@pytest.fixture
def orthanc(tmp_path):
    pacs = OrthancProcess(tmp_path / "orthanc").start()
    yield pacs
    pacs.stop()


def serve(home: Path, tmp_path: Path, env: dict | None = None) -> ApplianceProcess:
    return ApplianceProcess(home, tmp_path / "appliance.out", {**INFERENCE, **(env or {})}).start()


def test_phantom_series_comes_back_from_the_pacs_as_seg_and_sr(home, tmp_path, orthanc):
    run_cli(home, "destinations", "add", "pacs", "--ae", "ORTHANC", "--host", "127.0.0.1",
            "--port", str(orthanc.dicom_port), "--results")  # fmt: skip
    phantom = make_phantom(SHAPE, SPACING, seed=2026, lesion_count=3)
    datasets = phantom_series(phantom.hu, SPACING)
    files = write_series(tmp_path / "in", datasets)
    first, rest = files[:20], files[20:]
    random.Random(7).shuffle(rest)  # sent out of order: the volume is sorted by position
    # hour-long polls: each stage runs when its work falls due (a series' quiet period ends), or
    # when the stage before wakes it (a completed series the runner, queued results the sender);
    # a series quiet for half a second is prepared ahead, before its six-second quiet period ends
    appliance = serve(home, tmp_path, {"APPLIANCE_INFERENCE__POLL_SECONDS": "3600",
                                       "APPLIANCE_SEND__POLL_SECONDS": "3600",
                                       "APPLIANCE_ASSEMBLY__POLL_SECONDS": "3600",
                                       "APPLIANCE_ASSEMBLY__QUIET_SECONDS": "6",
                                       "APPLIANCE_INFERENCE__PREPARE_AHEAD_SECONDS": "0.5"})  # fmt: skip
    output = tmp_path / "appliance.out"
    prepared_ahead = lambda: len(re.findall(r"series \d+ prepared ahead", output.read_text()))  # noqa: E731
    try:
        wait_for(lambda: "inference process on cpu ready" in output.read_text(), 120, "the model loaded")
        assert storescu(appliance.dicom_port, first).returncode == 0
        # the first half pauses long enough to be prepared ahead: that work must not be used
        wait_for(lambda: prepared_ahead() == 1, 60, "the first half prepared ahead")
        assert storescu(appliance.dicom_port, rest).returncode == 0
        wait_for(lambda: len(orthanc.instances()) == 2, 180, "SEG and SR at the PACS", interval=1.0)
    finally:
        appliance.stop()
    assert prepared_ahead() == 2  # then the whole series, once it was quiet

    received = [
        dcmread(BytesIO(httpx.get(f"http://127.0.0.1:{orthanc.http_port}/instances/{i}/file").content))
        for i in orthanc.instances()
    ]
    (seg,) = [ds for ds in received if ds.SOPClassUID == SegmentationStorage]
    (sr,) = [ds for ds in received if ds.SOPClassUID == Comprehensive3DSRStorage]
    assert seg.StudyInstanceUID == sr.StudyInstanceUID == datasets[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == datasets[0].FrameOfReferenceUID
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"  # lesion
    referenced = {
        r.ReferencedSOPInstanceUID for r in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert referenced == {ds.SOPInstanceUID for ds in datasets}
    mask = seg_mask(seg, SHAPE, SPACING)  # placed by the SEG frames' own positions
    assert dice(mask, phantom.lesions_mask) >= 0.8
    (volume_ml,) = sr_volumes_ml(sr)
    assert volume_ml == pytest.approx(phantom.lesion_volume_ml(SPACING), rel=0.10)

    (job,) = jobs(home)
    assert job["state"] == "done" and "lesion_ct_segmentation" in job["outcome"] and "SEG" in job["outcome"]
    assert "prepared ahead while the series was quiet" in job["outcome"]
    inference = [e for e in audit_events(home) if e.get("type") == "Inference"]
    assert inference and inference[-1]["outcome"] == 0
    assert {o["id"] for o in inference[-1]["objects"]} >= {datasets[0].StudyInstanceUID}
    # the results are kept too, encrypted like everything else
    needles = [*phi_needles(FakePatient()), seg.SOPInstanceUID.encode(), b"lesion_ct_segmentation"]
    assert plaintext_hits(home / "store", needles) == []


def _small_series(tmp_path: Path, name: str, description: str, seed: int, **changes) -> list[Path]:
    phantom = make_phantom((96, 80, 12), (2.5, 2.5, 5.0), seed=seed, lesion_count=1)
    datasets = phantom_series(
        phantom.hu, (2.5, 2.5, 5.0), patient=FakePatient(patient_id=f"P{seed}"), seed=seed
    )
    for ds in datasets:
        ds.SeriesDescription = description
        for keyword, value in changes.items():
            setattr(ds, keyword, value)
    return write_series(tmp_path / name, datasets)


def test_faults_leave_failed_jobs_with_reasons_and_the_worker_goes_on(home, tmp_path):
    key = Ed25519PrivateKey.generate()

    def breaks_at_run_time(config: dict) -> None:
        config["network_def"]["in_channels"] = 2  # the convolution raises on a one-channel image

    broken = seeded_bundle(
        SHARED_BUNDLES / "spleen_ct_segmentation", tmp_path / "bundles", key, breaks_at_run_time
    )
    run_cli(home, "models", "trust", PUBLISHER, str(write_public_key(key, tmp_path / "test.pub")))
    run_cli(home, "models", "import", str(broken))
    run_cli(home, "models", "promote", "spleen_ct_segmentation", "0.5.9")
    shutil.rmtree(broken)
    rules = [
        {"model": "spleen_ct_segmentation", "series_description": "^raises"},
        {"model": "lesion_ct_segmentation", "series_description": "^slow", "timeout_seconds": 0.05},
        {"model": "lesion_ct_segmentation", "modality": ["CT"], "min_slices": 10},
    ]
    raises = _small_series(tmp_path, "raises", "raises please", 1)
    slow = _small_series(tmp_path, "slow", "slow please", 2)
    corrupt = _small_series(tmp_path, "corrupt", "corrupt", 3)
    broken_slice = dcmread(corrupt[4])
    broken_slice.PixelData = broken_slice.PixelData[:1000]  # a valid header, pixel data cut short
    broken_slice.save_as(corrupt[4])
    unrouted = _small_series(tmp_path, "mr", "mr", 4, Modality="MR")
    good = _small_series(tmp_path, "good", "good", 5)

    appliance = serve(home, tmp_path, {"APPLIANCE_INFERENCE__RULES": json.dumps(rules)})
    try:
        for files in (raises, slow, corrupt, unrouted):
            assert storescu(appliance.dicom_port, files).returncode == 0
        wait_for(lambda: len(jobs(home)) == 4, 60, "four series complete")
        assert storescu(appliance.dicom_port, good).returncode == 0  # last in the queue
        wait_for(lambda: finished(home, 5), 300, "every job finished", interval=1.0)
    finally:
        appliance.stop()

    by_series = {job["series_uid"]: job for job in jobs(home)}
    job = lambda files: by_series[dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID]  # noqa: E731
    assert job(raises)["state"] == "failed" and job(raises)["attempts"] == 2  # retried once
    assert "RuntimeError" in job(raises)["last_error"] and "channels" in job(raises)["last_error"]
    assert job(slow)["state"] == "failed" and job(slow)["attempts"] == 2
    assert "exceeded its 0.05 s timeout" in job(slow)["last_error"]
    assert job(corrupt)["state"] == "failed" and job(corrupt)["attempts"] == 1  # the same series fails again
    assert "pixel data cannot be decoded" in job(corrupt)["last_error"]
    assert job(unrouted)["state"] == "done" and "no routing rule matched" in job(unrouted)["outcome"]
    assert "modality MR not in ['CT']" in job(unrouted)["outcome"]
    assert job(good)["state"] == "done" and "SEG" in job(good)["outcome"]  # the worker went on
    assert job(good)["attempts"] == 1  # a job in flight when another timed out is not charged
    failures = [e for e in audit_events(home) if e.get("type") == "Inference" and e["outcome"] == 4]
    assert (
        len(failures) == 5
    )  # two attempts each for the raising and the slow model, one for the corrupt series


def test_two_series_waiting_together_run_as_one_batch_with_the_labels_each_gets_alone(home, tmp_path):
    """Dynamic batching through the appliance: two series' jobs wait in the queue (received while
    inference was off), the process takes them as one batch (their windows in shared network
    calls), and each one's lesion volume is the one the model finds in it alone."""
    series = [_small_series(tmp_path, name, f"batch {name}", seed) for name, seed in (("a", 6), ("b", 7))]
    receiving = ApplianceProcess(home, tmp_path / "receiving.out", FAST).start()
    try:
        for files in series:
            assert storescu(receiving.dicom_port, files).returncode == 0
        wait_for(lambda: len(jobs(home)) == 2, 60, "both series complete, their jobs queued")
    finally:
        receiving.stop()
    rules = [{"model": "lesion_ct_segmentation", "modality": ["CT"], "min_slices": 10}]
    environment = {
        "APPLIANCE_INFERENCE__RULES": json.dumps(rules),
        "APPLIANCE_INFERENCE__BATCH_SERIES": "2",
        "APPLIANCE_INFERENCE__BATCH_WAIT_SECONDS": "60",
    }
    appliance = serve(home, tmp_path, environment)
    try:
        wait_for(lambda: finished(home, 2), 300, "both jobs finished", interval=1.0)
    finally:
        appliance.stop()
    outcomes = {job["series_uid"]: job["outcome"] for job in jobs(home)}
    predictor = demo_predictor("cpu")
    for files in series:
        datasets = [dcmread(path) for path in files]
        outcome = outcomes[datasets[0].SeriesInstanceUID]
        assert "'batched_with': 1" in outcome, outcome
        volume = build_volume(datasets, 1)
        labels = predictor.predict(volume)
        (lesion,) = predictor.segments
        alone = float((labels == lesion.number).sum()) * volume.voxel_volume_ml
        assert alone > 0 and f"{lesion.label} {alone:.1f} mL" in outcome
