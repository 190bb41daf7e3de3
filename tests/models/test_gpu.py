"""On a GPU: the demo model, under its mixed precision, labels a phantom as it does on the CPU.

Runs only where CUDA is available (CI and the development machines have no GPU, so it is skipped
there); a session with the device tool runs it there beside ``benchmarks/inference.py --device cuda``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from models.volume import build_volume
from testbed.bundles import demo_predictor
from testbed.phantom import make_phantom
from testbed.synthetic import phantom_series
from tests.support.datasets import read_back
from tests.support.seg import dice

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA here")]

SPACING = (1.25, 1.25, 2.5)


class _Devices:
    """A postprocessing that records the device of what it is handed."""

    def __init__(self, postprocessing: Any) -> None:
        self.postprocessing, self.seen = postprocessing, []

    def __call__(self, data: dict) -> dict:
        self.seen.append(data["pred"].device)
        return self.postprocessing(data)


def test_the_gpu_gives_the_cpus_labels_and_hands_the_postprocessing_cpu_tensors():
    phantom = make_phantom((192, 160, 32), SPACING, seed=424242, lesion_count=2)
    volume = build_volume(read_back(phantom_series(phantom.hu, SPACING)))
    on_cpu = demo_predictor("cpu").predict(volume)

    gpu = demo_predictor("cuda")
    assert gpu.amp and next(gpu.network.parameters()).is_cuda  # the demo bundle allows half precision
    gpu.two_class_postprocessing = recorder = _Devices(gpu.two_class_postprocessing)
    on_gpu = gpu.predict(volume)

    assert recorder.seen == [torch.device("cpu")]  # the steps after the network run where they are tested
    assert on_cpu.any()
    assert dice(on_gpu == 1, on_cpu == 1) >= 0.99  # half precision may move a few border voxels
