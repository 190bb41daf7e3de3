"""ScaleIntensityRange in one tensor gives MONAI's own result bit for bit, metadata included."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import ScaleIntensityRange, ScaleIntensityRanged

from models import intensity


@pytest.mark.parametrize(
    "options",
    [
        dict(a_min=-200.0, a_max=300.0, b_min=0.0, b_max=1.0, clip=True),  # the bundles' CT window
        dict(a_min=-57.0, a_max=164.0, b_min=0.0, b_max=1.0, clip=False),
        dict(a_min=-1000.0, a_max=1000.0, b_min=None, b_max=None, clip=False),
        dict(a_min=-175.0, a_max=250.0, b_min=-1.0, b_max=None, clip=True),
        dict(a_min=-200.0, a_max=300.0, b_min=0.0, b_max=1.0, clip=True, dtype=torch.float16),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.int16])
def test_the_same_values_and_metadata_as_monai(options, dtype):
    generator = torch.Generator().manual_seed(11)
    voxels = (torch.rand(1, 20, 30, 10, generator=generator) * 3000 - 1500).to(dtype)
    affine = torch.diag(torch.tensor([-0.7, -0.7, 1.5, 1.0], dtype=torch.float64))
    transform = ScaleIntensityRange(**options)
    expected = intensity._ORIGINAL(transform, MetaTensor(voxels.clone(), affine=affine))
    source = MetaTensor(voxels.clone(), affine=affine)
    got = intensity._in_one_tensor(transform, source)
    assert isinstance(got, MetaTensor) and got.dtype == expected.dtype
    assert torch.equal(got.as_tensor(), expected.as_tensor())
    assert torch.equal(got.affine, affine) and torch.equal(source.as_tensor(), voxels)  # input untouched


def test_install_reaches_the_dict_form():
    original = ScaleIntensityRange.__call__
    try:
        intensity.install()
        transform = ScaleIntensityRanged(keys="image", a_min=-200.0, a_max=300.0, b_min=0.0, b_max=1.0)
        assert transform.scaler.__call__.__func__ is intensity._in_one_tensor
        image = torch.full((1, 4, 4, 4), 50.0)
        assert torch.allclose(transform({"image": image})["image"], torch.full((1, 4, 4, 4), 0.5))
    finally:
        ScaleIntensityRange.__call__ = original  # type: ignore[method-assign]
