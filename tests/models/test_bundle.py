"""The real Model Zoo bundle configs from shared/, with seeded weights, run to a valid SEG and SR."""

from __future__ import annotations

import pickle
from io import BytesIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydicom import dcmread
from pydicom.uid import Comprehensive3DSRStorage, SegmentationStorage

from models.bundle import BundleError, Predictor
from models.errors import BundleRejected
from models.manifest import sign_bundle
from models.results import write_results
from models.volume import build_volume
from testbed.bundles import PUBLISHER, SHARED_BUNDLES, demo_predictor, seeded_bundle
from testbed.phantom import make_phantom
from testbed.synthetic import phantom_series
from tests.support.datasets import encoded, read_back

KEY = Ed25519PrivateKey.generate()
TRUSTED = {PUBLISHER: KEY.public_key()}
SPACING = (2.0, 2.0, 3.0)


@pytest.fixture(scope="module")
def series():
    phantom = make_phantom((48, 40, 16), SPACING, seed=11)
    return read_back(phantom_series(phantom.hu, SPACING))


@pytest.mark.parametrize(
    ("name", "segments"), [("spleen_ct_segmentation", 1), ("swin_unetr_btcv_segmentation", 13)]
)
def test_model_zoo_bundle_runs_to_a_valid_seg_and_sr(tmp_path, series, name, segments):
    bundle = seeded_bundle(SHARED_BUNDLES / name, tmp_path, KEY)
    predictor = Predictor(bundle, TRUSTED, "cpu")
    assert len(predictor.segments) == segments
    volume = build_volume(series)
    labels = predictor.predict(volume)
    assert labels.shape == volume.array.shape  # inverted back onto the source grid
    assert labels.max() <= segments
    results = write_results(volume, labels, predictor.segments, predictor.identity)

    seg = dcmread(BytesIO(encoded(results.segmentation)))
    assert seg.SOPClassUID == SegmentationStorage and seg.Modality == "SEG"
    assert seg.StudyInstanceUID == series[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == series[0].FrameOfReferenceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series[0].SeriesInstanceUID
    assert len(seg.SegmentSequence) == segments
    for item in seg.SegmentSequence:
        for concept in (
            item.SegmentedPropertyCategoryCodeSequence[0],
            item.SegmentedPropertyTypeCodeSequence[0],
        ):
            assert concept.CodingSchemeDesignator == "SCT"  # SNOMED CT, not the retired SRT
    first = seg.SegmentSequence[0]
    assert first.SegmentLabel == "spleen"
    assert first.SegmentedPropertyTypeCodeSequence[0].CodeValue == "78961009"
    positions = {tuple(round(float(v), 3) for v in ds.ImagePositionPatient) for ds in series}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        position = frame.PlanePositionSequence[0].ImagePositionPatient
        assert tuple(round(float(v), 3) for v in position) in positions

    sr = dcmread(BytesIO(encoded(results.report)))
    assert sr.SOPClassUID == Comprehensive3DSRStorage
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    volumes = sorted(results.volumes_ml.values())
    expected = sorted(float((labels == s.number).sum()) * volume.voxel_volume_ml for s in predictor.segments)
    assert volumes == pytest.approx(expected)


def test_config_expressions_are_not_evaluated_before_the_signature(tmp_path):
    bundle = seeded_bundle(SHARED_BUNDLES / "spleen_ct_segmentation", tmp_path, KEY)
    marker = tmp_path / "evaluated"
    config = bundle / "configs" / "inference.json"
    config.write_text(
        config.read_text().replace('"bundle_root": "."', f"\"bundle_root\": \"$open('{marker}', 'w')\"")
    )
    with pytest.raises(BundleRejected, match="configs/inference.json differs"):
        Predictor(bundle, TRUSTED, "cpu")
    assert not marker.exists()


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_weights_are_loaded_without_unpickling_code(tmp_path):
    bundle = seeded_bundle(SHARED_BUNDLES / "spleen_ct_segmentation", tmp_path, KEY)
    marker = tmp_path / "unpickled"
    (bundle / "models" / "model.pt").write_bytes(pickle.dumps(_Payload(marker)))
    sign_bundle(bundle, KEY, PUBLISHER)  # even a correctly signed bundle may not run code from weights
    with pytest.raises(BundleError, match="cannot build"):
        Predictor(bundle, TRUSTED, "cpu")
    assert not marker.exists()


def test_unmapped_segment_label_is_refused(tmp_path):
    bundle = seeded_bundle(SHARED_BUNDLES / "spleen_ct_segmentation", tmp_path, KEY)
    metadata = bundle / "configs" / "metadata.json"
    metadata.write_text(metadata.read_text().replace('"1": "spleen"', '"1": "mystery organ"'))
    sign_bundle(bundle, KEY, PUBLISHER)
    with pytest.raises(Exception, match="no SNOMED CT code for segment label 'mystery organ'"):
        Predictor(bundle, TRUSTED, "cpu")


def test_faster_argmax_gives_monai_labels_ties_included():
    import torch
    from monai.data import MetaTensor
    from monai.transforms import AsDiscrete, AsDiscreted

    from models.bundle import _faster_discretisation

    scores = MetaTensor(
        torch.randint(0, 3, (3, 32, 24, 40)).float(), affine=torch.diag(torch.tensor([2.0, 2, 3, 1]))
    )
    expected = AsDiscrete(argmax=True)(scores)
    compose = type("Compose", (), {"transforms": [AsDiscreted(keys="pred", argmax=True)]})()
    _faster_discretisation(compose)
    got = compose.transforms[0]({"pred": scores})["pred"]
    assert got.dtype == expected.dtype and torch.equal(got.as_tensor(), expected.as_tensor())
    assert isinstance(got, MetaTensor) and torch.equal(got.affine, scores.affine)


def test_remembered_iod_lookups_give_highdicoms_answers():
    import highdicom._standard_utils as standard
    from pydicom.uid import CTImageStorage, EnhancedCTImageStorage

    remembered = standard.is_attribute_in_iod
    assert remembered.remembered  # installed when the results module is imported
    for question in [
        ("PerFrameFunctionalGroupsSequence", CTImageStorage, None),
        ("PerFrameFunctionalGroupsSequence", EnhancedCTImageStorage, None),
        ("PixelData", SegmentationStorage, ["IconImageSequence"]),
        ("PixelData", Comprehensive3DSRStorage, ["IconImageSequence"]),
    ]:
        asked_twice = remembered(*question), remembered(*question)
        assert asked_twice == (remembered.__wrapped__(*question),) * 2
    assert not remembered("PerFrameFunctionalGroupsSequence", CTImageStorage)
    assert remembered("PerFrameFunctionalGroupsSequence", EnhancedCTImageStorage)


def test_warm_up_runs_the_network_on_the_inferers_full_and_last_batch():
    predictor = demo_predictor("cpu")
    shapes = []
    predictor.network.register_forward_hook(lambda _m, inputs, _o: shapes.append(tuple(inputs[0].shape)))
    predictor.warm_up()
    # the demo bundle's sw_batch_size and roi; a last batch of one window runs as two on the CPU
    assert shapes == [(2, 1, 96, 96, 96)]


def test_preprocessing_lets_the_input_go_once_the_next_step_has_its_output():
    import gc
    import weakref

    import torch
    from monai.transforms import Compose, Lambdad

    from models.bundle import run_taking

    alive_at_step: list[bool] = []
    inputs = {"image": torch.ones(2, 3)}
    original = weakref.ref(inputs["image"])

    def note(x):  # type: ignore[no-untyped-def]
        gc.collect()
        alive_at_step.append(original() is not None)
        return x + 1

    compose = Compose([Lambdad("image", lambda x: x * 2), Lambdad("image", note), Lambdad("image", note)])
    result = run_taking(compose, inputs)
    assert inputs == {}  # taken over
    assert alive_at_step == [False, False]  # gone once the first step made its output
    assert torch.equal(result["image"], torch.full((2, 3), 4.0))
    lazy = Compose([Lambdad("image", lambda x: x * 2)], lazy=True)
    assert torch.equal(run_taking(lazy, {"image": torch.ones(1)})["image"], torch.full((1,), 2.0))


def test_the_seg_takes_the_label_frames_as_a_view_of_the_labels(series):
    """For single-frame images the SEG writer gets the labels themselves, not a copy beside them."""
    import numpy as np

    from models.results import _frames_in_source_order

    volume = build_volume(series)
    labels = np.asfortranarray((volume.array > 0).astype(np.uint8))  # slice by slice, as inferred
    sources, frames = _frames_in_source_order(volume, labels)
    assert np.shares_memory(frames, labels)
    assert [ds.SOPInstanceUID for ds in sources] == [frame.dataset.SOPInstanceUID for frame in volume.frames]
    for frame, source in zip(frames, sources, strict=True):  # each frame lies on its source image
        hu = source.pixel_array * float(source.RescaleSlope) + float(source.RescaleIntercept)
        assert np.array_equal(frame, hu > 0)
