"""Segment volumes in the SR: counted exactly from the labels on the source grid."""

from __future__ import annotations

import numpy as np
import pytest

from models.bundle import Segment
from models.codes import code_for
from models.identity import ModelIdentity
from models.results import _renumbered, write_results
from models.volume import build_volume
from testbed.phantom import make_phantom
from testbed.synthetic import phantom_series
from tests.support.datasets import read_back

SPACING = (2.0, 2.0, 3.0)
SEGMENTS = (Segment(1, "spleen", code_for("spleen")), Segment(2, "liver", code_for("liver")))


@pytest.mark.parametrize("orientation", ["axial", "coronal"])
def test_each_segments_volume_is_its_voxels_in_frames_with_and_without_it(orientation):
    phantom = make_phantom((24, 20, 10), SPACING, seed=5)
    volume = build_volume(read_back(phantom_series(phantom.hu, SPACING, orientation=orientation)))
    labels = np.zeros(volume.array.shape, dtype=np.uint8)
    frames = volume.frame_images(labels)  # a view: written through to the labels
    frames[2, 3:6, 4:9] = 1  # 15 voxels
    frames[3, 0:2, 0:2] = 1  # 4
    frames[3, 5, 5] = 2  # 1, in a frame that has segment 1 too
    frames[-1, 1:4, 1:3] = 2  # 6, in the last frame; every other frame is empty
    results = write_results(volume, labels, SEGMENTS, ModelIdentity("test", "1", ""))
    voxel = volume.voxel_volume_ml
    assert results.volumes_ml == pytest.approx({"spleen": 19 * voxel, "liver": 7 * voxel})
    assert len(results.segmentation.PerFrameFunctionalGroupsSequence) == 4  # 3 frames, one with both


def test_labels_of_no_segment_count_nowhere_and_leave_their_frames_out_of_the_seg():
    phantom = make_phantom((24, 20, 10), SPACING, seed=5)
    volume = build_volume(read_back(phantom_series(phantom.hu, SPACING)))
    segments = (Segment(3, "spleen", code_for("spleen")), Segment(7, "liver", code_for("liver")))
    labels = np.zeros(volume.array.shape, dtype=np.uint8)
    frames = volume.frame_images(labels)
    frames[1, 0:3, 0:3] = 7  # 9 voxels of the second segment
    frames[4, 2:4, 2:4] = 3  # 4 of the first
    frames[6, :, :] = 5  # a label the bundle names no segment for
    results = write_results(volume, labels, segments, ModelIdentity("test", "1", ""))
    voxel = volume.voxel_volume_ml
    assert results.volumes_ml == pytest.approx({"spleen": 4 * voxel, "liver": 9 * voxel})
    assert len(results.segmentation.PerFrameFunctionalGroupsSequence) == 2
    assert [item.SegmentLabel for item in results.segmentation.SegmentSequence] == ["spleen", "liver"]


def test_labels_become_seg_segment_numbers_without_a_copy_when_they_already_are():
    code = code_for("lesion", None)
    stack = np.array([[[0, 1, 2]], [[2, 5, 7]], [[0, 0, 0]]], dtype=np.uint8)  # three frames of 1x3
    in_order = (Segment(1, "lesion", code), Segment(2, "lesion", code))
    kept, occupied = _renumbered(stack[:1], in_order)
    assert np.shares_memory(kept, stack) and occupied.tolist() == [0]  # already 0, 1, 2: kept as is
    # labels the bundle does not name become 0; others take their segment's place in the order
    renumbered, occupied = _renumbered(stack, in_order)
    assert renumbered.tolist() == [[[0, 1, 2]], [[2, 0, 0]], [[0, 0, 0]]] and occupied.tolist() == [0, 1]
    gaps = (Segment(2, "lesion", code), Segment(5, "lesion", code))
    renumbered, occupied = _renumbered(stack, gaps)
    assert renumbered.tolist() == [[[0, 0, 1]], [[1, 2, 0]], [[0, 0, 0]]] and occupied.tolist() == [0, 1]
    _, occupied = _renumbered(stack, (Segment(7, "lesion", code),))
    assert occupied.tolist() == [1]  # frame 0 holds labels of no segment only


def test_many_segments_are_counted_as_exactly():
    phantom = make_phantom((24, 20, 10), SPACING, seed=5)
    volume = build_volume(read_back(phantom_series(phantom.hu, SPACING)))
    segments = tuple(Segment(n, f"organ {n}", code_for("liver")) for n in range(1, 21))  # 20: above 12
    labels = np.zeros(volume.array.shape, dtype=np.uint8)
    frames = volume.frame_images(labels)
    for n in range(1, 21):
        frames[n % 4, n - 1, :n] = n  # n voxels of segment n, four frames shared among them
    results = write_results(volume, labels, segments, ModelIdentity("test", "1", ""))
    voxel = volume.voxel_volume_ml
    assert results.volumes_ml == pytest.approx({f"organ {n}": n * voxel for n in range(1, 21)})
