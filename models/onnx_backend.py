"""A bundle's network run by ONNX Runtime, for an optimised version derived from a bundle.

The network is exported with a dynamic batch axis and, for ``int8``, quantised statically (QDQ)
on windows the source network was given. :class:`OnnxNetwork` wraps the session as a torch module,
so the bundle's own sliding-window inferer, pre- and post-processing run unchanged: only the
network call changes. A derived bundle carries ``models/model.onnx`` and ``configs/backend.json``
(:class:`Backend`: which backend and precision, and the version and manifest it was made from).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

BACKEND_CONFIG = "configs/backend.json"
ONNX_MODEL = "models/model.onnx"
BACKENDS = ("onnxruntime",)
PRECISIONS = ("fp32", "int8")
_INPUT, _OUTPUT = "image", "logits"
INT8_MIN_CHANNELS = 16  # narrower convolutions stay float in an int8 model (see quantize_int8)


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
    """Static int8 quantisation of the convolutions (QDQ: uint8 activations, int8 weights per output
    channel) calibrated on ``windows`` (batches as the network receives them). Transposed
    convolutions keep their weights in int8 too, but run in float (ONNX Runtime's CPU provider has
    no int8 kernel for them), so they shrink the model without speeding it.

    A convolution with fewer than :data:`INT8_MIN_CHANNELS` input or output channels stays float:
    ONNX Runtime's int8 kernels work on blocks of channels, and on the demo network's 2-channel
    convolution over 96³ windows int8 took 23 times as long as float (575 ms against 25 ms)."""
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
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
            op_types_to_quantize=["Conv", "ConvTranspose"],
            nodes_to_exclude=_narrow_convolutions(prepared, INT8_MIN_CHANNELS),
        )  # fmt: skip
    finally:
        prepared.unlink(missing_ok=True)


class OnnxNetwork(torch.nn.Module):
    """An ONNX Runtime session in the place of the bundle's network (CPU execution provider)."""

    def __init__(self, path: Path, threads: int) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(threads, 1)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        batch = np.ascontiguousarray(image.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self.session.run(None, {_INPUT: batch})[0])
