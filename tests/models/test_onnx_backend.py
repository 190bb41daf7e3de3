"""The ONNX export and int8 quantisation that ``appliance models optimize`` uses."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from models import onnx_backend
from models.errors import BackendUnavailable
from models.onnx_backend import (
    INT8_MIN_CHANNELS,
    SESSIONS_KEPT,
    TENSORRT_MAX_WINDOWS,
    Backend,
    OnnxNetwork,
    engine_key,
    export,
    providers,
    quantize_int8,
    require,
    window_shape,
)


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
    assert window_shape(int8) == (1, 16, 16, 16)

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


def test_int8_is_symmetric(tmp_path: Path):
    """TensorRT takes QDQ scales only with zero points of 0 (int8 activations, not uint8), and
    OpenVINO runs them faster."""
    torch.manual_seed(1)
    wide = INT8_MIN_CHANNELS
    network = torch.nn.Sequential(torch.nn.Conv3d(wide, wide, 3, padding=1), torch.nn.ReLU()).eval()
    rng = np.random.default_rng(3)
    windows = [rng.random((1, wide, 8, 8, 8), dtype=np.float32) for _ in range(3)]
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    export(network, torch.from_numpy(windows[0]), fp32)
    quantize_int8(fp32, int8, windows)
    model = onnx.load(str(int8))
    initialisers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    zero_points = [
        initialisers[node.input[2]]
        for node in model.graph.node
        if node.op_type == "QuantizeLinear" and len(node.input) > 2
    ]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)


_OPENVINO_INSTALLED = sys.platform == "linux" and platform.machine() == "x86_64"  # pyproject's marker


def test_on_the_cpu_openvino_runs_first_where_installed(monkeypatch, tmp_path: Path):
    import onnxruntime

    if _OPENVINO_INSTALLED:  # the default install brings it: a lost provider would fail here
        assert "OpenVINOExecutionProvider" in onnxruntime.get_available_providers()
    version = Backend("onnxruntime", "int8", "1.0.0", "")
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    )
    (openvino, options), (cpu, _) = providers(version, torch.device("cpu"), tmp_path)
    assert (openvino, cpu) == ("OpenVINOExecutionProvider", "CPUExecutionProvider")
    assert options == {"device_type": "CPU", "precision": "ACCURACY"}  # never bf16 in place of fp32
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert providers(version, torch.device("cpu"), tmp_path) == [("CPUExecutionProvider", {})]


@pytest.mark.skipif(not _OPENVINO_INSTALLED, reason="onnxruntime-openvino is installed on x86-64 Linux only")
def test_openvino_compiles_each_batch_size_and_gives_the_networks_logits(tmp_path: Path):
    torch.manual_seed(2)
    network = torch.nn.Sequential(
        torch.nn.Conv3d(1, 8, 3, padding=1), torch.nn.PReLU(), torch.nn.Conv3d(8, 2, 3, padding=1)
    ).eval()
    fp32 = tmp_path / "fp32.onnx"
    export(network, torch.zeros(1, 1, 16, 16, 16), fp32)
    chosen = providers(Backend("onnxruntime", "fp32", "1.0.0", ""), torch.device("cpu"), tmp_path)
    run = OnnxNetwork(fp32, threads=1, chosen=chosen)
    batches = torch.rand(SESSIONS_KEPT + 1, 1, 16, 16, 16)
    with torch.inference_mode():
        for size in (2, 1, 3, 2):
            expected = network(batches[:size])
            assert float((run(batches[:size]) - expected).abs().max()) < 1e-5
        assert run.provider == "OpenVINOExecutionProvider"
        assert sorted(run._sessions) == [1, 2, 3]  # one compiled session per batch size, kept
        for size in range(SESSIONS_KEPT, 0, -1):  # one size more than are kept
            assert float((run(batches[: size + 1]) - network(batches[: size + 1])).abs().max()) < 1e-5
    assert sorted(run._sessions) == list(range(2, SESSIONS_KEPT + 2))  # the least recently used went


def test_engines_are_kept_per_gpu_model_and_tensorrt_version():
    h200 = engine_key("NVIDIA H200", (9, 0), "10.13.3.9")
    assert h200 == "NVIDIA_H200-sm90-trt10.13.3.9"
    assert engine_key("NVIDIA H100 80GB HBM3", (9, 0), "10.13.3.9") != h200
    assert engine_key("NVIDIA H200", (9, 0), "10.14.1.48") != h200
    assert "/" not in engine_key("a/../b", (8, 6), "x y")


_DERIVED = Backend("tensorrt", "fp16", "1.0.0", "0" * 64)


def test_on_a_gpu_tensorrt_runs_first_with_its_precision_and_cache(monkeypatch, tmp_path: Path):
    import onnxruntime

    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index: (9, 0))
    chosen = providers(_DERIVED, torch.device("cuda:1"), tmp_path, (1, 96, 96, 96))
    (tensorrt, options), (cuda, cuda_options) = chosen
    assert (tensorrt, cuda, cuda_options) == (
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        {"device_id": 1},
    )
    assert options["device_id"] == 1 and options["trt_fp16_enable"] and not options["trt_int8_enable"]
    assert options["trt_engine_cache_enable"]
    assert options["trt_profile_min_shapes"] == "image:1x1x96x96x96"  # one engine for every batch size
    assert options["trt_profile_max_shapes"] == f"image:{TENSORRT_MAX_WINDOWS}x1x96x96x96"
    assert Path(options["trt_engine_cache_path"]).parent == tmp_path
    assert Path(options["trt_engine_cache_path"]).name.startswith("NVIDIA_H200-sm90-trt")
    monkeypatch.setattr(onnx_backend, "_tensorrt_version", lambda: "10.13.3.9")
    cached = providers(_DERIVED, torch.device("cuda"), tmp_path)[0][1]["trt_engine_cache_path"]
    assert Path(cached).name == "NVIDIA_H200-sm90-trt10.13.3.9"  # the libraries' version names it
    int8 = providers(Backend("tensorrt", "int8", "1.0.0", ""), torch.device("cuda"), tmp_path)
    assert int8[0][1]["trt_int8_enable"] and not int8[0][1]["trt_fp16_enable"]
    onnxruntime_on_gpu = providers(
        Backend("onnxruntime", "fp32", "1.0.0", ""), torch.device("cuda"), tmp_path
    )
    assert [name for name, _ in onnxruntime_on_gpu] == ["CUDAExecutionProvider"]


def test_a_gpu_version_without_a_gpu_or_its_provider_is_refused(monkeypatch, tmp_path: Path):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(BackendUnavailable, match="CUDA GPU"):
        providers(_DERIVED, torch.device("cpu"), tmp_path)
    with pytest.raises(BackendUnavailable, match="gpu extra"):
        require("tensorrt", torch.device("cuda"))
    with pytest.raises(BackendUnavailable, match="CUDAExecutionProvider"):
        require("onnxruntime", torch.device("cuda"))
    require("onnxruntime", torch.device("cpu"))


def test_the_tensorrt_version_is_read_from_the_wheel_the_gpu_extra_installs(monkeypatch):
    import importlib.metadata

    def installed(name: str) -> str:
        if name == "tensorrt-cu12-libs":  # what `pip install '.[gpu]'` brings; no `tensorrt` meta-package
            return "10.13.3.9"
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", installed)
    assert onnx_backend._tensorrt_version() == "10.13.3.9"
