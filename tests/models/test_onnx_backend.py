"""The ONNX export and int8 quantisation that ``appliance models optimize`` uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from models.onnx_backend import INT8_MIN_CHANNELS, OnnxNetwork, export, quantize_int8


def _quantised_inputs(model: onnx.ModelProto) -> set[str]:
    """The names of the Conv nodes whose weights come through a DequantizeLinear (stored as int8)."""
    dequantised = {node.output[0] for node in model.graph.node if node.op_type == "DequantizeLinear"}
    return {node.name for node in model.graph.node if node.op_type == "Conv" and node.input[1] in dequantised}


def test_int8_quantises_wide_convolutions_and_leaves_narrow_ones_float(tmp_path: Path):
    torch.manual_seed(0)
    wide = INT8_MIN_CHANNELS
    network = torch.nn.Sequential(
        torch.nn.Conv3d(1, wide, 3, padding=1),  # one input channel: stays float
        torch.nn.ReLU(),
        torch.nn.Conv3d(wide, wide, 3, padding=1),  # wide: int8
        torch.nn.ReLU(),
        torch.nn.Conv3d(wide, 2, 3, padding=1),  # two output channels: stays float
    ).eval()
    rng = np.random.default_rng(7)
    windows = [rng.random((1, 1, 16, 16, 16), dtype=np.float32) for _ in range(4)]
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    export(network, torch.from_numpy(windows[0]), fp32)
    quantize_int8(fp32, int8, windows)

    model = onnx.load(str(int8))
    convolutions = [node.name for node in model.graph.node if node.op_type == "Conv"]
    assert len(convolutions) == 3
    assert _quantised_inputs(model) == {convolutions[1]}

    batch = torch.from_numpy(np.concatenate(windows[:2]))  # the batch axis stays dynamic
    with torch.inference_mode():
        reference = network(batch)
        quantised = OnnxNetwork(int8, threads=1)(batch)
    assert quantised.shape == reference.shape
    assert float((quantised - reference).abs().max()) < 0.05 * float(reference.abs().max())
