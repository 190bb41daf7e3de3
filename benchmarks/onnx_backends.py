"""ONNX Runtime and TensorRT against eager PyTorch, as ``models optimize`` makes them: one network
call, and the bundle's whole sliding-window inferer over a volume.

The demo bundle's network (its weights, as the appliance loads it; or ``--network spleen``, the Model
Zoo spleen bundle's architecture and inferer, random weights) is exported to ONNX with a dynamic
batch axis. It runs on the same window batch the sliding-window inferer gives it (2 windows of 96³),
then under the bundle's own inferer (its window, batch and overlap) over a phantom volume of the
size a 512x512x200 CT has after the spleen bundle's resampling. int8 is ONNX Runtime's static QDQ
quantization, calibrated on windows of another phantom (``--calibration`` of them).

On the CPU: ONNX Runtime as the appliance runs it (the OpenVINO provider where the default install
has it, on x86-64 Linux; else the CPU provider), fp32 and int8, against eager PyTorch with the same
number of threads (PyTorch's oneDNN kernels, channels-last: its fastest layout for 3-D convolutions
here, 1.3x its default). With ``--device cuda``: ONNX Runtime's CUDA provider (fp32) and TensorRT
through ONNX Runtime's TensorRT provider (fp32, fp16, int8; its engine built by the untimed first
call) against eager PyTorch in fp32 and under autocast (fp16), each call waited for on the GPU.
The sides take turns round by round, so that a slow stretch of the machine falls on all of them.

Printed: median seconds, the ratios against eager fp32 PyTorch, the largest logit difference, the
share of window voxels whose label (argmax) agrees with PyTorch's, the lowest per-class Dice of the
volume's labels against PyTorch's, and each model file's size.

    python benchmarks/onnx_backends.py [--network demo|spleen] [--device cpu|cuda] [--threads 2]
                                       [--rounds 6] [--volume-rounds 3] [--calibration 8]
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
# a 512x512x200 CT of 0.7x0.7x1.5 mm resampled to 1.5x1.5x2 mm, as the spleen bundle does
VOLUME = (240, 240, 150)


def _median_seconds(calls: dict[str, Callable[[], object]], rounds: int, timed: int = 3) -> dict[str, float]:
    """Each call's median seconds over ``rounds`` rounds of ``timed`` calls each, the calls taking
    turns round by round; each round starts with an untimed call (the first allocates, and another
    side's threads may still be winding down)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            call()
            for _ in range(timed):
                started = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def _phantom(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """A phantom's intensities scaled as the demo bundle scales them (-200..300 HU to 0..1)."""
    hu = make_phantom(shape, (1.5, 1.5, 1.5), seed=seed).hu.astype(np.float32)
    return np.clip((hu + 200.0) / 500.0, 0.0, 1.0)


def _windows(count: int, seed: int) -> list[np.ndarray]:
    """Windows of a scaled phantom, each a batch of one as the network receives it."""
    scaled = _phantom((192, 160, 120), seed)
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(count):
        x, y, z = (int(rng.integers(0, n - ROI + 1)) for n in scaled.shape)
        found.append(scaled[None, None, x : x + ROI, y : y + ROI, z : z + ROI].copy())
    return found


def _zoo_bundle(name: str) -> tuple[torch.nn.Module, Callable]:
    """A Model Zoo bundle's network (random weights: they do not change the time of a call) and
    sliding-window inferer, as its inference config defines them."""
    from monai.bundle import ConfigParser

    config = ConfigParser(json.loads((SHARED_BUNDLES / name / "configs" / "inference.json").read_text()))
    torch.manual_seed(0)
    return config.get_parsed_content("network_def"), config.get_parsed_content("inferer")


def _dice(a: np.ndarray, b: np.ndarray, label: int) -> float:
    """Dice of the voxels labelled ``label`` in ``a`` and in ``b`` (1.0 where neither has any)."""
    x, y = a == label, b == label
    total = int(x.sum() + y.sum())
    return 1.0 if total == 0 else 2.0 * int((x & y).sum()) / total


def _print_times(title: str, seconds: dict[str, float]) -> None:
    print(title)
    for name, value in seconds.items():
        print(f"  {name:24} {value:.4f} s   speed vs pytorch {seconds['pytorch'] / value:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of 3 timed calls per side")
    parser.add_argument("--volume-rounds", type=int, default=3, help="rounds of one whole volume per side")
    parser.add_argument("--calibration", type=int, default=8, help="phantom windows to calibrate int8 on")
    parser.add_argument(
        "--network", choices=["demo", "spleen"], default="demo",
        help="spleen: the Model Zoo spleen bundle's network (its architecture, random weights)",
    )  # fmt: skip
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.network == "demo":
        demo = demo_predictor("cpu")
        network, inferer = demo.network, demo.inferer
    else:
        network, inferer = _zoo_bundle("spleen_ct_segmentation")
    network = network.eval()
    if device.type == "cpu":
        # PyTorch at its best here: oneDNN's channels-last 3-D kernels, as the appliance runs it
        network = network.to(memory_format=torch.channels_last_3d)
    network = network.to(device)
    tensor = torch.from_numpy(np.concatenate(_windows(2, seed=11))).to(device)
    volume = torch.from_numpy(_phantom(VOLUME, seed=5)[None, None]).to(device)

    def waited(call: Callable[[], object]) -> Callable[[], object]:
        return (lambda: (call(), torch.cuda.synchronize())) if device.type == "cuda" else call

    def autocast(inputs: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.float16):
            return network(inputs)

    with torch.inference_mode():
        reference = network(tensor).float().cpu().numpy()
        labels = inferer(volume, network).argmax(1).cpu().numpy()
    calibration = _windows(args.calibration, seed=3)
    with tempfile.TemporaryDirectory(prefix="onnx-bench-") as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export(network, tensor[:1], fp32)  # as `appliance models optimize` exports and quantises
        quantize_int8(fp32, int8, calibration)
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
        networks: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"pytorch": network}
        if device.type == "cuda":
            networks["pytorch autocast fp16"] = autocast
        networks.update(runs)
        with torch.inference_mode():
            calls = {name: waited(lambda n=n: n(tensor)) for name, n in networks.items()}
            seconds = _median_seconds(calls, args.rounds)
            whole = {name: waited(lambda n=n: inferer(volume, n)) for name, n in networks.items()}
            volume_seconds = _median_seconds(whole, args.volume_rounds, timed=1)
            for name, run in runs.items():
                logits = run(tensor).cpu().numpy()
                agree = float((logits.argmax(1) == reference.argmax(1)).mean())
                error = float(np.abs(logits - reference).max())
                theirs = inferer(volume, run).argmax(1).cpu().numpy()
                dice = min(_dice(labels, theirs, label) for label in range(1, reference.shape[1]))
                print(f"{name}: largest logit difference {error:.2e}, window labels agreeing {agree:.4%}, "
                      f"volume Dice {dice:.4f} (lowest class), {sizes[name] / 1e6:.2f} MB")  # fmt: skip
    where = f"{args.threads} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    used = ", ".join(sorted({run.provider for run in runs.values()}))
    _print_times(f"one call on 2 windows of {ROI}^3, {where}, ONNX Runtime on {used}, median of "
                 f"{3 * args.rounds}:", seconds)  # fmt: skip
    _print_times(f"the bundle's sliding-window inferer over a {'x'.join(map(str, VOLUME))} volume, median of "
                 f"{args.volume_rounds}:", volume_seconds)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
