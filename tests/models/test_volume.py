"""Series to volume: sorting along the normal, rescale, LPS to RAS geometry, multi-frame, refusals."""

from __future__ import annotations

import random

import numpy as np
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from models.volume import InconsistentSeries, build_volume
from testbed.phantom import make_phantom
from testbed.synthetic import enhanced_ct, phantom_series
from tests.support.datasets import HeadersFirst, read_back

SPACING = (1.25, 1.0, 2.5)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom((48, 40, 12), SPACING, seed=3)


def world(volume, index) -> np.ndarray:
    return (volume.affine_ras @ np.array([*index, 1.0]))[:3]


def index_of(volume, point) -> tuple[int, ...]:
    return tuple(int(v) for v in np.rint(np.linalg.solve(volume.affine_ras, [*point, 1.0])[:3]))


def in_ras(hu: np.ndarray) -> np.ndarray:
    """The phantom (indexed on LPS axes) in RAS order: x and y reversed, as the volume stores it."""
    return hu[::-1, ::-1, :].astype(np.float32)


def test_axial_series_gives_the_phantom_in_ras(phantom):
    volume = build_volume(read_back(phantom_series(phantom.hu, SPACING)))
    assert volume.array.shape == phantom.hu.shape
    assert np.array_equal(volume.array, in_ras(phantom.hu))
    assert volume.spacing == pytest.approx(SPACING)
    # each axis runs along its RAS axis (as MONAI's Orientation("RAS") would leave it): voxel
    # (0,0,0) is the corner with the smallest RAS coordinates; the phantom is centred on the origin
    assert np.allclose(volume.affine_ras[:3, :3], np.diag(SPACING))
    corner = [-(n - 1) / 2.0 * s for n, s in zip(phantom.hu.shape, SPACING, strict=True)]
    assert world(volume, (0, 0, 0)) == pytest.approx(corner)
    assert volume.voxel_volume_ml == pytest.approx(np.prod(SPACING) / 1000)
    # the slices lie whole in memory, and each maps back onto its source image
    assert volume.array.strides[2] == volume.array.strides[0] * phantom.hu.shape[0] * phantom.hu.shape[1]
    for k, frame in enumerate(volume.frames):
        assert np.array_equal(volume.frame_images(volume.array)[k], frame.dataset.pixel_array - 1024)


def test_shuffled_order_and_misleading_instance_numbers_sort_by_position(phantom):
    datasets = read_back(phantom_series(phantom.hu, SPACING))
    numbers = list(range(1, len(datasets) + 1))
    random.Random(1).shuffle(numbers)
    for ds, number in zip(datasets, numbers, strict=True):
        ds.InstanceNumber = number  # instance numbers that contradict the positions
    random.Random(2).shuffle(datasets)
    volume = build_volume(datasets)
    assert np.array_equal(volume.array, in_ras(phantom.hu))


def test_rescale_slope_and_intercept_are_applied(phantom):
    volume = build_volume(read_back(phantom_series(phantom.hu, SPACING, rescale=(0.5, -1000.0))))
    assert np.array_equal(volume.array, in_ras(phantom.hu))


def test_whole_values_are_kept_in_int16_exactly_and_the_rest_in_float32(phantom):
    """``whole``: int16 where every slice's rescale is whole and every value fits; float32 otherwise
    (also when only a late slice does not fit), the same values either way."""
    hu = phantom.hu.astype(np.float64)
    doubled = build_volume(read_back(phantom_series(phantom.hu, SPACING, rescale=(2.0, -1024.0))), whole=True)
    assert doubled.array.dtype == np.int16
    assert np.array_equal(doubled.array, in_ras(np.rint((hu + 1024) / 2) * 2 - 1024))
    halves = build_volume(read_back(phantom_series(phantom.hu, SPACING, rescale=(0.5, -1000.0))), whole=True)
    assert halves.array.dtype == np.float32 and np.array_equal(halves.array, in_ras(phantom.hu))
    bright = hu.copy()
    bright[:4, :4, -1] = 35000  # past int16 once rescaled, stored as 5000 under an intercept of 30000
    over = build_volume(read_back(phantom_series(bright, SPACING, rescale=(1.0, 30000.0))), whole=True)
    assert over.array.dtype == np.float32 and np.array_equal(over.array, in_ras(bright))


def test_coronal_series_maps_to_the_same_world_points(phantom):
    axial = build_volume(read_back(phantom_series(phantom.hu, SPACING)))
    coronal = build_volume(read_back(phantom_series(phantom.hu, SPACING, "coronal")))
    assert coronal.array.shape == (48, 12, 40)  # columns, rows (superior to inferior), slices
    assert coronal.reversed_axes[1]  # image rows run down (S to I); the volume's j runs up
    for index in [(0, 0, 0), (5, 7, 3), (47, 39, 11)]:
        same = index_of(coronal, world(axial, index))
        assert world(coronal, same) == pytest.approx(world(axial, index))
        assert coronal.array[same] == axial.array[index]


def test_enhanced_multiframe_ct(phantom):
    slices = phantom_series(phantom.hu, SPACING)
    random.Random(3).shuffle(slices)
    volume = build_volume(read_back([enhanced_ct(slices)]))
    assert np.array_equal(volume.array, in_ras(phantom.hu))
    assert sorted(frame.frame for frame in volume.frames) == list(range(1, 13))
    stored = HeadersFirst([enhanced_ct(slices)])
    loaded = build_volume(stored.headers, load_pixels=stored.whole)
    assert np.array_equal(loaded.array, volume.array)
    assert len(stored.loads) == 1  # one object: read whole once for all its frames


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda s: s.pop(5), "missing slices: a gap of 5.00 mm where slices are 2.50 mm apart"),
        (lambda s: setattr(s[3], "ImageOrientationPatient", [1, 0, 0, 0, 0.8, 0.6]), "one orientation"),
        (lambda s: setattr(s[2], "PixelSpacing", [2.0, 2.0]), "mixed pixel spacing"),
        (lambda s: setattr(s[4], "ImagePositionPatient", s[5].ImagePositionPatient), "share one position"),
        (lambda s: delattr(s[1], "ImagePositionPatient"), "no image position"),
    ],
)
def test_inconsistent_series_is_refused_with_a_reason(phantom, spoil, reason):
    datasets = phantom_series(phantom.hu, SPACING)
    spoil(datasets)
    with pytest.raises(InconsistentSeries, match=reason):
        build_volume(read_back(datasets))


def test_mixed_sizes_and_undecodable_pixels_are_refused(phantom):
    datasets = phantom_series(phantom.hu, SPACING)
    small = phantom_series(phantom.hu[:40], SPACING)
    datasets[6] = small[6]
    with pytest.raises(InconsistentSeries, match="mixed image sizes"):
        build_volume(read_back(datasets))
    datasets = phantom_series(phantom.hu, SPACING)
    datasets[2].PixelData = datasets[2].PixelData[: len(datasets[2].PixelData) // 2]
    with pytest.raises(InconsistentSeries, match="pixel data cannot be decoded"):
        build_volume(read_back(datasets))


def test_too_few_slices(phantom):
    with pytest.raises(InconsistentSeries, match="12 slices; at least 20 needed"):
        build_volume(read_back(phantom_series(phantom.hu, SPACING)), min_slices=20)


@pytest.mark.parametrize(
    "syntax",
    [RLELossless, JPEGLSLossless, JPEG2000Lossless],
    ids=["rle", "jpeg-ls", "jpeg2000"],
)
def test_compressed_series_decode_to_the_same_volume(phantom, syntax):
    datasets = phantom_series(phantom.hu, SPACING)
    for ds in datasets:
        ds.compress(syntax)
    assert all(ds.file_meta.TransferSyntaxUID == syntax for ds in read_back(datasets[:1]))
    stored = HeadersFirst(datasets)
    volume = build_volume(stored.headers, load_pixels=stored.whole)
    assert np.array_equal(volume.array, in_ras(phantom.hu))
    assert sorted(stored.loads) == sorted(ds.SOPInstanceUID for ds in datasets)  # each once
    assert not any("PixelData" in frame.dataset for frame in volume.frames)  # the frames keep headers


def test_the_voxels_live_in_their_own_mapping_outside_the_heap(phantom):
    import mmap

    volume = build_volume(read_back(phantom_series(phantom.hu, SPACING)))
    base = volume.array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    # freed whole when the volume goes, whatever the heap holds
    assert isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)
    assert volume.array.flags.writeable and volume.array.dtype == np.float32
