"""SEG geometry: shuffled, non-axial and rescaled series give the same segmentation in space.

Runs the bundled demo model (models/demo) through the appliance's own path: volume, bundle,
SEG writer; the SEG is read back with pydicom alone and placed on the phantom's grid by its
frames' positions.
"""

from __future__ import annotations

import random
from io import BytesIO

import numpy as np
import pytest
import torch
from pydicom import dcmread

from models.bundle import Predictor
from models.results import write_results
from models.two_class import two_class_postprocessing
from models.volume import build_volume
from testbed.bundles import demo_predictor
from testbed.phantom import make_phantom
from testbed.synthetic import phantom_series
from tests.support.datasets import encoded, read_back
from tests.support.seg import dice, seg_mask, sr_volumes_ml

SPACING = (1.25, 1.25, 2.5)
SHAPE = (192, 160, 32)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return demo_predictor("cpu")


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(SHAPE, SPACING, seed=424242, lesion_count=2)


def segment(predictor, datasets, orientation="axial"):
    volume = build_volume(read_back(datasets))
    labels = predictor.predict(volume)
    results = write_results(volume, labels, predictor.segments, predictor.identity)
    seg = dcmread(BytesIO(encoded(results.segmentation)))
    sr = dcmread(BytesIO(encoded(results.report)))
    return seg_mask(seg, SHAPE, SPACING, orientation), sr, seg


def test_same_segmentation_whatever_the_order_orientation_and_rescale(predictor, phantom):
    reference, sr, seg = segment(predictor, phantom_series(phantom.hu, SPACING))
    assert dice(reference, phantom.lesions_mask) >= 0.8
    (volume_ml,) = sr_volumes_ml(sr)
    assert volume_ml == pytest.approx(phantom.lesion_volume_ml(SPACING), rel=0.10)
    sources = {
        ref.ReferencedSOPInstanceUID for ref in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    assert len(sources) == SHAPE[2]

    shuffled = phantom_series(phantom.hu, SPACING)
    random.Random(5).shuffle(shuffled)
    assert (segment(predictor, shuffled)[0] == reference).all()

    rescaled = phantom_series(phantom.hu, SPACING, rescale=(0.5, -1000.0))
    assert (segment(predictor, rescaled)[0] == reference).all()

    coronal, _, _ = segment(predictor, phantom_series(phantom.hu, SPACING, "coronal"), "coronal")
    assert dice(coronal, reference) >= 0.99  # the same anatomy on a grid resampled the same way


@pytest.mark.parametrize("orientation", ["axial", "coronal"])
def test_two_class_margin_gives_the_bundles_own_labels(predictor, phantom, orientation):
    """Inverting p1 - p0 and thresholding gives exactly the bundle's softmax, Invertd, argmax labels."""
    volume = build_volume(read_back(phantom_series(phantom.hu, SPACING, orientation=orientation)))
    margin_form = predictor.two_class_postprocessing
    assert margin_form is not None
    fast = predictor.predict(volume)
    predictor.two_class_postprocessing = None  # the bundle's own postprocessing
    try:
        own = predictor.predict(volume)
    finally:
        predictor.two_class_postprocessing = margin_form
    assert fast.any() and np.array_equal(fast, own)
    if orientation == "axial":  # laid out as the volume is, slice by slice, for the SEG writer
        assert fast.strides[2] > fast.strides[1] > fast.strides[0]


def test_other_postprocessing_is_left_as_the_bundle_wrote_it():
    from monai.transforms import Activationsd, AsDiscreted, Compose, Invertd, Lambdad

    assert two_class_postprocessing(Compose([AsDiscreted(keys="pred", argmax=True)])) is None
    assert two_class_postprocessing(Compose([Activationsd(keys="pred", sigmoid=True)])) is None
    softmax_invert_argmax = [
        Activationsd(keys="pred", softmax=True),
        Invertd(keys="pred", transform=Compose([]), orig_keys="image"),
        AsDiscreted(keys="pred", argmax=True),
    ]
    assert two_class_postprocessing(Compose(softmax_invert_argmax)) is not None
    # a step before the pattern would be handed the logits' difference in place of both logits
    earlier = Lambdad(keys="pred", func=lambda logits: logits * 2)
    assert two_class_postprocessing(Compose([earlier, *softmax_invert_argmax])) is None


@pytest.mark.parametrize(
    ("steps", "signs_only"),
    [
        (["Orientation", "SpatialResample"], True),
        (["CropForeground", "SpatialResample", "Flip"], True),
        (["SpatialResample", "SpatialResample"], False),  # the second inversion would mix the zeros
        (["Orientation", "SpatialResample", "Zoom"], False),  # an interpolation the module does not know
        (["Orientation"], False),
    ],
)
def test_the_inversion_computes_only_signs_when_that_is_exact(steps, signs_only):
    from monai.data import MetaTensor
    from monai.transforms import Activationsd, AsDiscreted, Compose, Invertd

    from models import resampling

    seen = []

    class Spy(Invertd):
        def __call__(self, data):  # type: ignore[no-untyped-def]
            seen.append(resampling._SIGN_ONLY.get())
            return data

    invert = Spy(keys="pred", transform=Compose([]), orig_keys="image")
    margin_form = two_class_postprocessing(
        Compose([Activationsd(keys="pred", softmax=True), invert, AsDiscreted(keys="pred", argmax=True)])
    )
    image = MetaTensor(torch.zeros(1, 4, 4, 4))
    image.applied_operations = [{"class": step} for step in steps]
    margin_form({"image": image, "pred": torch.zeros(1, 4, 4, 4)})
    assert seen == [signs_only]


@pytest.mark.parametrize("image_layout", ["slices", "contiguous"])
def test_the_margin_is_the_bundles_softmax_difference_from_the_logits_difference(image_layout):
    from monai.data import MetaTensor
    from monai.transforms import Activationsd, AsDiscreted, Compose, Invertd

    activations = Activationsd(keys="pred", softmax=True)
    margin_form = two_class_postprocessing(
        Compose(
            [
                activations,
                Invertd(keys="pred", transform=Compose([]), orig_keys="image"),
                AsDiscreted(keys="pred", argmax=True),
            ]
        )
    )
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 20, 18, 24, generator=generator) * 4
    difference = MetaTensor(logits[1:2] - logits[0:1], affine=torch.diag(torch.tensor([2.0, 2, 3, 1])))
    image = (
        torch.zeros(1, 24, 18, 20).permute(0, 3, 2, 1)
        if image_layout == "slices"
        else torch.zeros(1, 20, 18, 24)
    )
    probabilities = activations({"pred": logits})["pred"]
    expected = probabilities[1:2] - probabilities[0:1]
    data = {"pred": difference, "image": MetaTensor(image)}
    margin = margin_form.transforms[0](data)["pred"]
    torch.testing.assert_close(margin.as_tensor(), torch.as_tensor(expected), rtol=0, atol=1e-6)
    assert torch.equal(margin.as_tensor() > 0, torch.as_tensor(expected) > 0)  # the labels it gives
    assert margin.stride() == image.stride()  # in the image's memory order
    torch.testing.assert_close(margin.affine, difference.affine)  # the prediction's metadata
    assert data["pred"] is margin  # the caller's dict no longer holds the difference
    # no bundle step follows the labels: the image is kept as its metadata alone
    assert data["image"].numel() == 0
    torch.testing.assert_close(data["image"].affine, MetaTensor(image).affine)


def test_the_image_is_kept_whole_when_a_bundle_step_follows_the_labels():
    from monai.data import MetaTensor
    from monai.transforms import Activationsd, AsDiscreted, Compose, Invertd, KeepLargestConnectedComponentd

    margin_form = two_class_postprocessing(
        Compose(
            [
                Activationsd(keys="pred", softmax=True),
                Invertd(keys="pred", transform=Compose([]), orig_keys="image"),
                AsDiscreted(keys="pred", argmax=True),
                KeepLargestConnectedComponentd(keys="pred"),
            ]
        )
    )
    image = MetaTensor(torch.zeros(1, 4, 4, 4))
    data = {"pred": torch.zeros(1, 4, 4, 4), "image": image}
    assert margin_form.transforms[0](data)["image"] is image and data["image"] is image


def test_the_images_voxels_are_freed_before_the_inversion(predictor, phantom):
    import weakref

    volume = build_volume(read_back(phantom_series(phantom.hu, SPACING)))
    prepared = predictor.prepare(volume)
    voxels = weakref.ref(prepared["image"])
    margin_form = predictor.two_class_postprocessing
    invert = margin_form.transforms[1]
    alive_at_inversion = []

    def spy(data):  # type: ignore[no-untyped-def]
        alive_at_inversion.append(voxels() is not None)
        return invert(data)

    transforms = margin_form.transforms
    margin_form.transforms = (transforms[0], spy, *transforms[2:])
    try:
        labels = predictor.infer(prepared, volume.array.shape)
    finally:
        margin_form.transforms = transforms
    assert prepared == {} and alive_at_inversion == [False] and labels.any()


def test_the_inferer_accumulates_one_channel_for_a_two_class_bundle(predictor, phantom):
    """The sliding window's output, the largest block of the network stage, has one channel."""
    volume = build_volume(read_back(phantom_series(phantom.hu, SPACING)))
    inferer, shapes = predictor.inferer, []

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        output = inferer(*args, **kwargs)
        shapes.append(tuple(output.shape))
        return output

    predictor.inferer = spy
    try:
        predictor.predict(volume)
    finally:
        predictor.inferer = inferer
    assert len(shapes) == 1 and shapes[0][:2] == (1, 1)
