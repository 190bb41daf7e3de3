"""ONNX Runtime and TensorRT against eager PyTorch, one network call, as ``models optimize`` makes them.

The demo bundle's network (its weights, as the appliance loads it; or ``--network spleen``, the Model
Zoo spleen bundle's architecture) is exported to ONNX with a dynamic batch axis and run on the same
window batch the sliding-window inferer gives it (2 windows of 96³). int8 is ONNX Runtime's static
QDQ quantization, calibrated on windows of a phantom series (``--calibration`` of them).

On the CPU: ONNX Runtime's CPU provider, fp32 and int8, against eager PyTorch with the same number
of threads (PyTorch's oneDNN kernels, channels-last as the appliance runs them). With ``--device
cuda``: ONNX Runtime's CUDA provider (fp32) and TensorRT through ONNX Runtime's TensorRT provider
(fp32, fp16, int8 with symmetric scales; its engine built by the untimed first call) against eager
PyTorch in fp32 and under autocast (fp16), each call waited for on the GPU. Printed: median seconds
per call, the ratios against eager fp32 PyTorch, the largest logit difference, the share of voxels
whose label (argmax) agrees with PyTorch's, and each model file's size.

    python benchmarks/onnx_backends.py [--network demo|spleen] [--device cpu|cuda] [--threads 2]
                                       [--calls 7] [--calibration 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.onnx_backend import Backend, OnnxNetwork, export, providers, quantize_int8, window_shape  # noqa: E402
from testbed.bundles import SHARED_BUNDLES, demo_predictor  # noqa: E402
from testbed.phantom import make_phantom  # noqa: E402

ROI = 96


def _median_seconds(call: Callable[[], object], calls: int) -> float:
    call()  # the first call allocates
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _windows(count: int, seed: int) -> list[np.ndarray]:
    """Windows of a phantom's intensities scaled as the demo bundle scales them (-200..300 HU to 0..1)."""
    hu = make_phantom((192, 160, 120), (1.5, 1.5, 1.5), seed=seed).hu.astype(np.float32)
    scaled = np.clip((hu + 200.0) / 500.0, 0.0, 1.0)
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(count):
        x, y, z = (int(rng.integers(0, n - ROI + 1)) for n in scaled.shape)
        found.append(scaled[None, None, x : x + ROI, y : y + ROI, z : z + ROI].copy())
    return found


def _zoo_network(name: str) -> torch.nn.Module:
    """A Model Zoo bundle's network as its inference config defines it, with random weights (the
    weights do not change the time of a call)."""
    from monai.bundle import ConfigParser

    config = json.loads((SHARED_BUNDLES / name / "configs" / "inference.json").read_text())
    torch.manual_seed(0)
    return ConfigParser(config["network_def"]).get_parsed_content()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=7)
    parser.add_argument("--calibration", type=int, default=8, help="phantom windows to calibrate int8 on")
    parser.add_argument(
        "--network", choices=["demo", "spleen"], default="demo",
        help="spleen: the Model Zoo spleen bundle's network (its architecture, random weights)",
    )  # fmt: skip
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    network = (
        demo_predictor("cpu").network if args.network == "demo" else _zoo_network("spleen_ct_segmentation")
    ).eval()
    if device.type == "cpu":
        # PyTorch at its best here: oneDNN's channels-last 3-D kernels, as the appliance runs it
        network = network.to(memory_format=torch.channels_last_3d)
    network = network.to(device)
    tensor = torch.from_numpy(np.concatenate(_windows(2, seed=11))).to(device)

    def waited(call: Callable[[], object]) -> Callable[[], object]:
        return (lambda: (call(), torch.cuda.synchronize())) if device.type == "cuda" else call

    with torch.inference_mode():
        reference = network(tensor).float().cpu().numpy()
    calibration = _windows(args.calibration, seed=3)
    with tempfile.TemporaryDirectory(prefix="onnx-bench-") as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export(network, tensor[:1], fp32)  # as `appliance models optimize` exports and quantises
        quantize_int8(fp32, int8, calibration, symmetric=device.type == "cuda")
        versions = (
            {
                "onnxruntime fp32": ("onnxruntime", "fp32", fp32),
                "onnxruntime int8": ("onnxruntime", "int8", int8),
            }
            if device.type == "cpu"
            else {
                "onnxruntime fp32 (CUDA)": ("onnxruntime", "fp32", fp32),
                "tensorrt fp32": ("tensorrt", "fp32", fp32),
                "tensorrt fp16": ("tensorrt", "fp16", fp32),
                "tensorrt int8": ("tensorrt", "int8", int8),
            }
        )  # fmt: skip
        runs = {
            name: OnnxNetwork(
                path, args.threads, device,
                providers(Backend(backend, precision, "", ""), device, Path(tmp), window_shape(path)),
            )
            for name, (backend, precision, path) in versions.items()
        }  # fmt: skip
        sizes = {name: path.stat().st_size for name, (_, _, path) in versions.items()}
        with torch.inference_mode():
            seconds = {"pytorch": _median_seconds(waited(lambda: network(tensor)), args.calls)}
            if device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.float16):
                    seconds["pytorch autocast fp16"] = _median_seconds(
                        waited(lambda: network(tensor)), args.calls
                    )
            for name, run in runs.items():
                seconds[name] = _median_seconds(waited(lambda r=run: r(tensor)), args.calls)
                logits = run(tensor).cpu().numpy()
                agree = float((logits.argmax(1) == reference.argmax(1)).mean())
                error = float(np.abs(logits - reference).max())
                print(f"{name}: largest logit difference {error:.2e}, labels agreeing {agree:.4%}, "
                      f"{sizes[name] / 1e6:.2f} MB")  # fmt: skip
    where = f"{args.threads} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"one call on 2 windows of {ROI}^3, {where}, median of {args.calls}:")
    for name, value in seconds.items():
        print(f"  {name:24} {value:.4f} s   speed vs pytorch {seconds['pytorch'] / value:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
