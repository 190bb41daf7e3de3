"""Separable axis-aligned resampling gives MONAI's results: nearest exactly, linear to float32 rounding."""

from __future__ import annotations

import monai.transforms.spatial.array as array
import monai.transforms.spatial.functional as functional
import pytest
import torch
from monai.data import MetaTensor
from monai.networks.layers import AffineTransform
from monai.transforms import Compose, EnsureChannelFirstd, Invertd, Orientationd, Spacingd

from models.resampling import AxisAlignedAffineTransform, install, sign_only

SCALE_AND_SHIFT = torch.tensor([[0.47, 0, 0, 1.3], [0, 0.6, 0, -2.2], [0, 0, 1.7, 0.4], [0, 0, 0, 1]])


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_axis_aligned_resampling_matches_monai(mode, align_corners, padding):
    source = torch.rand(1, 2, 30, 40, 25, generator=torch.Generator().manual_seed(1))
    options = dict(normalized=False, mode=mode, padding_mode=padding, align_corners=align_corners,
                   reverse_indexing=True)  # fmt: skip
    expected = AffineTransform(**options)(source, SCALE_AND_SHIFT, spatial_size=(64, 70, 15))
    got = AxisAlignedAffineTransform(**options)(
        source, SCALE_AND_SHIFT, spatial_size=torch.tensor([64, 70, 15])
    )
    assert got.shape == expected.shape
    if mode == "nearest":  # the same neighbour, ties included
        assert torch.equal(got, expected)
    else:  # a product of three 1-D interpolations: the same weights, rounded in another order
        assert torch.allclose(got, expected, rtol=0, atol=1e-6)
        assert (got != expected).any()  # (this is the separable path, not grid_sample)


def test_output_keeps_the_input_memory_order_and_values():
    source = torch.rand(1, 1, 30, 40, 25, generator=torch.Generator().manual_seed(4))
    slice_major = torch.empty(1, 1, 25, 40, 30).permute(0, 1, 4, 3, 2).copy_(source)
    transform = AxisAlignedAffineTransform(normalized=False, mode="bilinear", padding_mode="zeros",
                                           reverse_indexing=True)  # fmt: skip
    contiguous = transform(source, SCALE_AND_SHIFT, spatial_size=(64, 70, 15))
    reordered = transform(slice_major, SCALE_AND_SHIFT, spatial_size=(64, 70, 15))
    assert torch.allclose(reordered, contiguous, rtol=0, atol=1e-6)  # passes in another order
    assert reordered.stride()[2:] == (1, 64, 64 * 70)  # slices outermost, as in the input


def test_an_axis_left_on_its_voxels_is_copied_not_blended():
    source = torch.rand(1, 1, 30, 40, 25, generator=torch.Generator().manual_seed(5))
    only_x = torch.tensor([[0.47, 0, 0, 1.3], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    transform = AxisAlignedAffineTransform(normalized=False, mode="bilinear", padding_mode="border",
                                           reverse_indexing=True)  # fmt: skip
    got = transform(source, only_x, spatial_size=(64, 40, 25))
    # along y and z every output voxel is an input voxel: each output row is a 1-D resampling
    row = transform(source[:, :, :, 7:8, 3:4], only_x, spatial_size=(64, 1, 1))
    assert torch.equal(got[:, :, :, 7:8, 3:4], row)


@pytest.mark.parametrize(
    "scales",
    [(0.47, 0.6, 1.0), (1.0, 1.0, 1.0), (0.47, 1.0, 1.0)],
    ids=["slices-unchanged", "all-unchanged", "only-columns"],
)
@pytest.mark.parametrize("slice_major", [True, False], ids=["slice-major", "row-major"])
def test_axes_left_on_their_voxels_match_monai_in_either_memory_order(scales, slice_major):
    """An unchanged outermost axis is read in place, and the last pass writes the result directly."""
    source = torch.rand(1, 1, 30, 40, 25, generator=torch.Generator().manual_seed(6))
    if slice_major:
        source = torch.empty(1, 1, 25, 40, 30).permute(0, 1, 4, 3, 2).copy_(source)
    theta = torch.diag(torch.tensor([*scales, 1.0]))
    theta[0, 3] = 1.3 if scales[0] != 1 else 0.0
    options = dict(normalized=False, mode="bilinear", padding_mode="zeros", reverse_indexing=True)
    size = tuple(round(n / s) for n, s in zip((30, 40, 25), scales, strict=True))
    expected = AffineTransform(**options)(source.contiguous(), theta, spatial_size=size)
    got = AxisAlignedAffineTransform(**options)(source, theta, spatial_size=size)
    assert torch.allclose(got, expected, rtol=0, atol=1e-5)  # grid_sample is off by ~4e-6 here itself
    assert (got.stride(4) > got.stride(2)) == slice_major  # the source's memory order


def test_rotations_go_to_monai():
    rotation = torch.tensor([[0.0, -1, 0, 20], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    source = torch.rand(1, 1, 24, 24, 8, generator=torch.Generator().manual_seed(2))
    options = dict(normalized=False, mode="bilinear", padding_mode="border", reverse_indexing=True)
    expected = AffineTransform(**options)(source, rotation, spatial_size=(24, 24, 8))
    assert torch.equal(
        AxisAlignedAffineTransform(**options)(source, rotation, spatial_size=(24, 24, 8)), expected
    )


def test_spacing_and_its_inversion_match_monai():
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

    installed = functional.AffineTransform, array.spatial_resample  # other tests may have installed it
    try:
        functional.AffineTransform, array.spatial_resample = AffineTransform, functional.spatial_resample
        expected = run()  # MONAI's own
        install()
        got = run()
    finally:
        functional.AffineTransform, array.spatial_resample = installed
    assert got[1].shape == (2, 90, 80, 20)
    # MONAI computes in float64 (Spacing's default); the installed resampling in the image's float32
    assert torch.allclose(got[0], expected[0], rtol=0, atol=2e-5)
    assert torch.allclose(got[1], expected[1], rtol=0, atol=2e-5)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("slice_major", [True, False], ids=["slice-major", "row-major"])
def test_sign_only_computes_what_comes_out_above_zero_exactly(mode, slice_major):
    """Two positive blobs in a negative field: the same voxels above zero with the same values;
    every other voxel is at most zero, and a slab that reads no positive voxel is left at 0."""
    source = -torch.rand(1, 1, 30, 40, 25, generator=torch.Generator().manual_seed(7)) - 0.01
    source[..., 3:6, 30:34, 4:6] = torch.rand(3, 4, 2, generator=torch.Generator().manual_seed(8))
    source[..., 20:22, 5:7, 9:10] = 0.5
    if slice_major:
        source = torch.empty(1, 1, 25, 40, 30).permute(0, 1, 4, 3, 2).copy_(source)
    transform = AxisAlignedAffineTransform(normalized=False, mode=mode, padding_mode="zeros",
                                           reverse_indexing=True)  # fmt: skip
    full = transform(source, SCALE_AND_SHIFT, spatial_size=(64, 70, 15))
    with sign_only():
        signs = transform(source, SCALE_AND_SHIFT, spatial_size=(64, 70, 15))
    above = full > 0
    assert above.any() and torch.equal(signs > 0, above)
    assert torch.equal(signs[above], full[above])  # the same arithmetic, not an approximation
    assert (signs[~above] <= 0).all() and (signs == 0).sum() > (full == 0).sum()  # most not computed
    with sign_only():
        nothing = transform(source.clamp(max=0), SCALE_AND_SHIFT, spatial_size=(64, 70, 15))
    assert not nothing.any()


def test_sign_only_is_left_when_its_block_ends():
    source = -torch.rand(1, 1, 30, 40, 25, generator=torch.Generator().manual_seed(9))
    transform = AxisAlignedAffineTransform(normalized=False, mode="bilinear", padding_mode="zeros",
                                           reverse_indexing=True)  # fmt: skip
    with sign_only():
        pass
    assert (transform(source, SCALE_AND_SHIFT, spatial_size=(64, 70, 15)) < 0).any()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def test_sign_only_output_takes_memory_only_where_computed():
    """Upsampling a mostly negative field to 244 MiB of float32: the part left 0 is never written,
    so making and reading the whole output adds far less than its size to the process."""
    source = torch.full((1, 1, 40, 40, 40), -1.0)
    source[..., 18:21, 18:21, 18:21] = 1.0
    transform = AxisAlignedAffineTransform(normalized=False, mode="bilinear", padding_mode="zeros",
                                           reverse_indexing=True)  # fmt: skip
    theta = torch.diag(torch.tensor([0.1, 0.1, 0.1, 1.0], dtype=torch.float64))
    before = _rss_bytes()
    with sign_only():
        signs = transform(source, theta, spatial_size=(400, 400, 400))
    above = int(torch.count_nonzero(signs > 0.5))  # reads every voxel
    grown = _rss_bytes() - before
    size = signs.numel() * signs.element_size()
    assert size == 400**3 * 4 and 0 < above < 100_000
    assert grown < size // 8, f"{grown >> 20} MiB for a {size >> 20} MiB output"
