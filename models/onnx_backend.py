"""A bundle's network run by ONNX Runtime, for an optimised version derived from a bundle.

The network is exported with a dynamic batch axis and, for ``int8``, quantised statically (QDQ)
on windows the source network was given. :class:`OnnxNetwork` wraps the session as a torch module,
so the bundle's own sliding-window inferer, pre- and post-processing run unchanged: only the
network call changes. A derived bundle carries ``models/model.onnx`` and ``configs/backend.json``
(:class:`Backend`: which backend and precision, and the version and manifest it was made from).

Backends: ``onnxruntime`` runs on the CPU, through ONNX Runtime's OpenVINO provider where the
install has it (the default on x86-64 Linux) and its CPU provider elsewhere, or on the CUDA provider
on a GPU; ``tensorrt`` runs on ONNX Runtime's TensorRT provider on a GPU (``fp16``: TensorRT's half
precision; ``int8``: the QDQ model), its engines built on first use for the GPU model and TensorRT
version at hand and cached under a directory named by both.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.errors import BackendUnavailable

BACKEND_CONFIG = "configs/backend.json"
ONNX_MODEL = "models/model.onnx"
BACKENDS = {"onnxruntime": ("fp32", "int8"), "tensorrt": ("fp32", "fp16", "int8")}  # and their precisions
_INPUT, _OUTPUT = "image", "logits"
INT8_MIN_CHANNELS = 16  # narrower convolutions stay float in an int8 model (see quantize_int8)
# the most windows a TensorRT engine takes in one call: a batch is the inferer's sw_batch_size times
# the series batched together (inference.batch_series, 4 on a GPU), with room for larger settings
TENSORRT_MAX_WINDOWS = 64
SESSIONS_KEPT = 4  # OpenVINO sessions an OnnxNetwork keeps, one per batch size (see OnnxNetwork)


@dataclass(frozen=True)
class Backend:
    backend: str
    precision: str
    source_version: str
    source_manifest_sha256: str

    def write(self, bundle: Path) -> None:
        (bundle / BACKEND_CONFIG).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, bundle: Path) -> Backend | None:
        path = bundle / BACKEND_CONFIG
        return cls(**json.loads(path.read_text())) if path.is_file() else None


def export(network: torch.nn.Module, sample: torch.Tensor, path: Path) -> None:
    """``network`` as ONNX (opset 17), its batch axis dynamic (the inferer's last batch is smaller)."""
    with torch.inference_mode():
        torch.onnx.export(
            network.eval(), (sample.contiguous(),), str(path), input_names=[_INPUT], output_names=[_OUTPUT],
            dynamic_axes={_INPUT: {0: "batch"}, _OUTPUT: {0: "batch"}}, opset_version=17, dynamo=False,
        )  # fmt: skip


def _narrow_convolutions(model: Path, fewest: int) -> list[str]:
    """The Conv nodes of ``model`` with fewer than ``fewest`` input or output channels."""
    import onnx

    graph = onnx.load(str(model)).graph
    weights = {w.name: w.dims for w in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type == "Conv" and node.input[1] in weights and min(weights[node.input[1]][:2]) < fewest
    ]


def quantize_int8(fp32: Path, out: Path, windows: list[np.ndarray]) -> None:
    """Static int8 quantisation of the convolutions (QDQ: int8 activations and int8 weights per
    output channel, symmetric, zero points of 0) calibrated on ``windows`` (batches as the network
    receives them). Symmetric scales are the only form TensorRT accepts, and OpenVINO ran them about
    twice as fast as uint8 activations (the figures are in issue 25's note). Transposed convolutions
    keep their weights in int8 too; ONNX Runtime's CPU provider runs them in float.

    A convolution with fewer than :data:`INT8_MIN_CHANNELS` input or output channels stays float:
    ONNX Runtime's int8 kernels work on blocks of channels and ran such layers many times slower
    than its float ones (the figures are in issue 25's note)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Windows(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches: Iterator[np.ndarray] = iter(windows)

        def get_next(self) -> dict | None:
            batch = next(self._batches, None)
            return None if batch is None else {_INPUT: batch}

    prepared = out.with_name(f".{out.name}.pre")
    try:
        quant_pre_process(str(fp32), str(prepared))
        quantize_static(
            str(prepared), str(out), Windows(), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
            op_types_to_quantize=["Conv", "ConvTranspose"],
            nodes_to_exclude=_narrow_convolutions(prepared, INT8_MIN_CHANNELS),
        )  # fmt: skip
    finally:
        prepared.unlink(missing_ok=True)


def engine_key(gpu_name: str, capability: tuple[int, int], tensorrt_version: str) -> str:
    """The name of the directory that caches TensorRT engines: an engine runs only on the GPU model
    and TensorRT version it was built with, so each pair builds and keeps its own."""
    key = f"{gpu_name}-sm{capability[0]}{capability[1]}-trt{tensorrt_version}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key)


def _tensorrt_version() -> str:
    """The version of the TensorRT libraries here, whichever wheel brought them (the ``gpu`` extra's
    ``tensorrt-cu12``, or the ``tensorrt`` meta-package); ONNX Runtime's own when none is found."""
    from importlib.metadata import PackageNotFoundError, version

    for distribution in ("tensorrt-cu12-libs", "tensorrt-cu13-libs", "tensorrt-cu12", "tensorrt"):
        try:
            return version(distribution)
        except PackageNotFoundError:
            continue
    import onnxruntime

    return f"unknown-ort{onnxruntime.__version__}"


def _engine_directory(root: Path, device: torch.device) -> Path:
    tensorrt = _tensorrt_version()
    index = device.index or 0
    return root / engine_key(
        torch.cuda.get_device_name(index), torch.cuda.get_device_capability(index), tensorrt
    )


_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def require(backend: str, device: torch.device) -> None:
    """Raise BackendUnavailable unless a ``backend`` version can run on ``device`` here."""
    import onnxruntime as ort

    if backend != "onnxruntime" and device.type != "cuda":
        raise BackendUnavailable(f"a {backend} version runs on a CUDA GPU, not on the {device.type}")
    needed = _PROVIDERS["tensorrt" if backend == "tensorrt" else device.type]
    if needed not in ort.get_available_providers():
        raise BackendUnavailable(
            f"ONNX Runtime here has no {needed}: install the gpu extra on a GPU host (README, GPU hosts)"
        )


def window_shape(model: Path) -> tuple[int, ...]:
    """The shape of one window ``model`` takes (its input's shape after the batch axis)."""
    import onnx

    dims = onnx.load(str(model), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value for d in dims[1:])


def providers(
    backend: Backend, device: torch.device, engines: Path, window: tuple[int, ...] = ()
) -> list[tuple[str, dict]]:
    """ONNX Runtime's execution providers for ``backend`` on ``device``, the preferred first (the
    CPU provider after OpenVINO, the CUDA provider after TensorRT, take what the first cannot);
    TensorRT's engines under ``engines``,
    each built once for every batch of 1 to :data:`TENSORRT_MAX_WINDOWS` windows of ``window``
    (else TensorRT would build another engine for each new batch size it met)."""
    require(backend.backend, device)
    if device.type != "cuda":
        import onnxruntime as ort

        cpu = (_PROVIDERS["cpu"], {})
        if _PROVIDERS["openvino"] not in ort.get_available_providers():
            return [cpu]
        # the model's own precision: OpenVINO would otherwise be free to run float layers in bf16
        return [(_PROVIDERS["openvino"], {"device_type": "CPU", "precision": "ACCURACY"}), cpu]
    cuda = (_PROVIDERS["cuda"], {"device_id": device.index or 0})
    if backend.backend == "onnxruntime":
        return [cuda]
    cache = str(_engine_directory(engines, device))
    tensorrt = {
        "device_id": device.index or 0,
        "trt_fp16_enable": backend.precision == "fp16",
        "trt_int8_enable": backend.precision == "int8",  # its scales are the model's QDQ nodes'
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": cache,
    }
    if window:
        shape = "x".join(str(n) for n in window)
        tensorrt["trt_profile_min_shapes"] = f"{_INPUT}:1x{shape}"
        tensorrt["trt_profile_opt_shapes"] = f"{_INPUT}:{TENSORRT_MAX_WINDOWS // 4}x{shape}"
        tensorrt["trt_profile_max_shapes"] = f"{_INPUT}:{TENSORRT_MAX_WINDOWS}x{shape}"
    return [(_PROVIDERS["tensorrt"], tensorrt), cuda]


class OnnxNetwork(torch.nn.Module):
    """An ONNX Runtime session in the place of the bundle's network.

    Windows and logits stay on ``device``: the session reads the input tensor's memory and writes
    into an output tensor made for it (I/O binding), so a GPU's windows never cross to the host.

    On the OpenVINO provider each batch size gets its own session, compiled for that batch
    (``reshape_input``): OpenVINO ran the spleen network's static shapes 1.3x (fp32) and 1.4x (int8)
    faster than its dynamic batch axis. A batch size costs one compile, a fraction of a second, the
    first time it comes; the sizes are few (the inferer's batch and its last batch; more where
    dynamic batching fills batches from several series), and :meth:`Predictor.warm_up` compiles the
    common ones. Each session holds its compiled model and buffers (100-200 MB on spleen), so at
    most :data:`SESSIONS_KEPT` are kept, the least recently used dropped first."""

    def __init__(
        self,
        path: Path,
        threads: int,
        device: torch.device | None = None,
        chosen: list[tuple[str, dict]] | None = None,
    ) -> None:
        """``chosen``: the providers (see :func:`providers`; the CPU's when not given)."""
        super().__init__()
        self.device = device or torch.device("cpu")
        self._path, self._threads = path, max(threads, 1)
        self._chosen = chosen or [(_PROVIDERS["cpu"], {})]
        openvino = self._chosen[0][0] == _PROVIDERS["openvino"]
        self._window = window_shape(path) if openvino else ()  # read only where a session fixes its batch
        self._per_batch = openvino and all(self._window)
        self._sessions: OrderedDict[int | None, Any] = OrderedDict()  # the most recently used last
        first = self._session(1 if self._per_batch else None)
        self._output_shape = tuple(first.get_outputs()[0].shape[1:])
        if not all(isinstance(n, int) for n in self._output_shape):
            raise BackendUnavailable(f"{path.name}: only the batch axis of its output may vary")

    @property
    def provider(self) -> str:
        """The execution provider that runs the network (ONNX Runtime's name for it)."""
        return next(iter(self._sessions.values())).get_providers()[0]

    def _session(self, batch: int | None) -> Any:
        """The session for ``batch`` windows (``None``: the one session, its batch axis dynamic)."""
        session = self._sessions.get(batch)
        if session is not None:
            self._sessions.move_to_end(batch)
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            chosen = self._chosen
            if batch is not None:
                (name, settings), *rest = chosen
                shape = ",".join(str(n) for n in (batch, *self._window))
                static = {"num_of_threads": str(self._threads), "reshape_input": f"{_INPUT}[{shape}]"}
                chosen = [(name, {**settings, **static}), *rest]
            session = self._sessions[batch] = ort.InferenceSession(str(self._path), options, providers=chosen)
            if len(self._sessions) > SESSIONS_KEPT:
                self._sessions.popitem(last=False)
        return session

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        batch = image.detach().to(self.device, torch.float32).contiguous()
        logits = torch.empty((batch.shape[0], *self._output_shape), dtype=torch.float32, device=self.device)
        kind, index = self.device.type, self.device.index or 0
        session = self._session(batch.shape[0] if self._per_batch else None)
        binding = session.io_binding()
        binding.bind_input(_INPUT, kind, index, np.float32, tuple(batch.shape), batch.data_ptr())
        binding.bind_output(_OUTPUT, kind, index, np.float32, tuple(logits.shape), logits.data_ptr())
        if kind == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # the window is written before it is read
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return logits
