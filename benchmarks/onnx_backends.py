"""The first measurement of issue 25: ONNX Runtime fp32 and int8 against eager PyTorch, one network call.

The demo bundle's network (its weights, as the appliance loads it; or ``--network spleen``, the Model
Zoo spleen bundle's architecture) is exported to ONNX with a
dynamic batch axis and run by ONNX Runtime's CPU provider on the same window batch the sliding-window
inferer gives it (2 windows of 96³); int8 is ONNX Runtime's static QDQ quantization, calibrated on
windows of a phantom series (``--calibration`` of them). Both sides use the same number of threads.
Printed: median seconds per call for each, the ratios against PyTorch, the largest logit difference
and the share of voxels whose label (argmax) agrees with PyTorch's.

This is one network call, not the appliance's path: it tells whether the backends are worth wiring in.

    python benchmarks/onnx_backends.py [--network demo|spleen] [--threads 2] [--calls 7] [--calibration 8]
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

from models.onnx_backend import OnnxNetwork, export, quantize_int8  # noqa: E402
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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    network = (
        demo_predictor("cpu").network if args.network == "demo" else _zoo_network("spleen_ct_segmentation")
    ).eval()
    batch = np.concatenate(_windows(2, seed=11))
    tensor = torch.from_numpy(batch)
    with torch.inference_mode():
        reference = network(tensor).numpy()
    calibration = _windows(args.calibration, seed=3)
    with tempfile.TemporaryDirectory(prefix="onnx-bench-") as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export(network, tensor[:1], fp32)  # as `appliance models optimize` exports and quantises
        quantize_int8(fp32, int8, calibration)
        files = {"onnxruntime fp32": fp32, "onnxruntime int8": int8}
        runs = {name: OnnxNetwork(path, args.threads) for name, path in files.items()}
        sizes = {name: path.stat().st_size for name, path in files.items()}
        with torch.inference_mode():
            seconds = {"pytorch": _median_seconds(lambda: network(tensor), args.calls)}
            for name, run in runs.items():
                seconds[name] = _median_seconds(lambda r=run: r(tensor), args.calls)
                logits = run(tensor).numpy()
                agree = float((logits.argmax(1) == reference.argmax(1)).mean())
                error = float(np.abs(logits - reference).max())
                print(f"{name}: largest logit difference {error:.2e}, labels agreeing {agree:.4%}, "
                      f"{sizes[name] / 1e6:.2f} MB")  # fmt: skip
    print(f"one call on 2 windows of {ROI}^3, {args.threads} threads, median of {args.calls}:")
    for name, value in seconds.items():
        print(f"  {name:17} {value:.3f} s   speed vs pytorch {seconds['pytorch'] / value:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
