"""The axis-aligned sampling grid gives MONAI's resampling results, bit for bit."""

from __future__ import annotations

import monai.transforms.spatial.functional as functional
import pytest
import torch
from monai.data import MetaTensor
from monai.networks.layers import AffineTransform
from monai.transforms import Compose, EnsureChannelFirstd, Invertd, Orientationd, Spacingd

from models.resampling import AxisAlignedAffineTransform, install

SCALE_AND_SHIFT = torch.tensor([[0.47, 0, 0, 1.3], [0, 0.6, 0, -2.2], [0, 0, 1.7, 0.4], [0, 0, 0, 1]])


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_axis_aligned_grid_matches_monai(align_corners, padding):
    source = torch.rand(1, 2, 30, 40, 25, generator=torch.Generator().manual_seed(1))
    options = dict(normalized=False, mode="bilinear", padding_mode=padding, align_corners=align_corners,
                   reverse_indexing=True)  # fmt: skip
    expected = AffineTransform(**options)(source, SCALE_AND_SHIFT, spatial_size=(64, 70, 15))
    got = AxisAlignedAffineTransform(**options)(
        source, SCALE_AND_SHIFT, spatial_size=torch.tensor([64, 70, 15])
    )
    assert torch.equal(got, expected)


def test_rotations_go_to_monai():
    rotation = torch.tensor([[0.0, -1, 0, 20], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    source = torch.rand(1, 1, 24, 24, 8, generator=torch.Generator().manual_seed(2))
    options = dict(normalized=False, mode="bilinear", padding_mode="border", reverse_indexing=True)
    expected = AffineTransform(**options)(source, rotation, spatial_size=(24, 24, 8))
    assert torch.equal(
        AxisAlignedAffineTransform(**options)(source, rotation, spatial_size=(24, 24, 8)), expected
    )


def test_spacing_and_its_inversion_are_unchanged():
    preprocessing = Compose(
        [
            EnsureChannelFirstd(keys="image", channel_dim="no_channel"),
            Orientationd(keys="image", axcodes="RAS"),
            Spacingd(keys="image", pixdim=[1.5, 1.5, 1.5], mode="bilinear"),
        ]
    )
    affine = torch.diag(torch.tensor([-0.7, -0.8, 2.5, 1.0], dtype=torch.float64))
    image = torch.rand(90, 80, 20, generator=torch.Generator().manual_seed(3))

    def run():  # type: ignore[no-untyped-def]
        data = preprocessing({"image": MetaTensor(image.clone(), affine=affine)})
        data["pred"] = MetaTensor(data["image"].as_tensor().repeat(2, 1, 1, 1))
        invert = Invertd(keys="pred", transform=preprocessing, orig_keys="image", nearest_interp=False)
        return data["image"].as_tensor(), invert(data)["pred"].as_tensor()

    original = functional.AffineTransform
    try:
        functional.AffineTransform = AffineTransform
        expected = run()
        install()
        got = run()
    finally:
        functional.AffineTransform = original
    assert got[1].shape == (2, 90, 80, 20)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
