"""Dynamic batching: series per hour with several series waiting, batched vs one at a time, one run.

``--series`` phantom CT volumes (different seeds) are preprocessed once by the demo bundle (or,
with ``--bundle spleen``, the Model Zoo spleen bundle's real architecture with seeded random
weights), then each round runs the network stage (sliding-window inference and postprocessing to
labels on the source grid) on all of them, alternating the two ways:

- one at a time: ``Predictor.infer`` per series, as the inference process runs a lone series;
- batched: ``Predictor.infer_many`` on all of them, their windows joined in shared network calls
  (what the inference process does with ``inference.batch_series`` series waiting).

Preprocessing is left out of both (the inference process overlaps it with the network either way),
and so is start-up: the predictor is built and warmed once. Each round checks that both ways give
the same labels. It prints the median and best seconds of each way, series per hour, and the ratio.
The issue's target (at least 1.5x) is for a GPU; on the CPU the figure is reported without one.

    python benchmarks/batching.py [--series 4] [--shape 256 256 96] [--rounds 5] [--device cpu]
                                  [--bundle demo|spleen]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import fast_paths  # noqa: E402
from models.bundle import BatchedSeries, Predictor  # noqa: E402
from models.volume import Volume  # noqa: E402
from testbed.bundles import PUBLISHER, SHARED_BUNDLES, demo_predictor, seeded_bundle  # noqa: E402
from testbed.phantom import make_phantom  # noqa: E402

SPACING = (0.9, 0.9, 2.0)


def _predictor(name: str, device: str, scratch: Path) -> Predictor:
    if name == "demo":
        return demo_predictor(device)
    key = Ed25519PrivateKey.generate()
    bundle = seeded_bundle(SHARED_BUNDLES / "spleen_ct_segmentation", scratch, key)
    return Predictor(bundle, {PUBLISHER: key.public_key()}, device)


def _volume(shape: tuple[int, int, int], seed: int) -> Volume:
    hu = make_phantom(shape, SPACING, seed=seed, lesion_count=3).hu.astype(np.float32)
    return Volume(hu, np.diag([*SPACING, 1.0]), ())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=4)
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 256, 96])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bundle", choices=("demo", "spleen"), default="demo")
    parser.add_argument("--wait", type=float, default=0.05, help="a series' wait for the others (s)")
    args = parser.parse_args()
    fast_paths.install()
    with tempfile.TemporaryDirectory() as scratch:
        predictor = _predictor(args.bundle, args.device, Path(scratch))
        predictor.warm_up()
        volumes = [_volume(tuple(args.shape), seed) for seed in range(args.series)]
        prepared = [predictor.prepare(volume) for volume in volumes]
        print(
            f"{args.series} series of {'x'.join(map(str, args.shape))} voxels, {args.bundle} bundle on "
            f"{args.device} ({torch.get_num_threads()} threads), {args.rounds} rounds"
        )

        def copies() -> list[dict]:  # infer takes its items; each run gets the same tensors again
            return [dict(items) for items in prepared]

        seconds: dict[str, list[float]] = {"one at a time": [], "batched": []}
        for round_no in range(args.rounds):
            ways = list(seconds) if round_no % 2 == 0 else list(seconds)[::-1]
            labels: dict[str, list[np.ndarray]] = {}
            for way in ways:
                started = time.perf_counter()
                if way == "batched":
                    series = [BatchedSeries(d, v.array.shape) for d, v in zip(copies(), volumes, strict=True)]
                    found, _ = predictor.infer_many(series, args.wait)
                    labels[way] = [f for f in found if isinstance(f, np.ndarray)]
                else:
                    labels[way] = [
                        predictor.infer(d, v.array.shape) for d, v in zip(copies(), volumes, strict=True)
                    ]
                seconds[way].append(time.perf_counter() - started)
            same = all(np.array_equal(a, b) for a, b in zip(*labels.values(), strict=True))
            print(f"round {round_no + 1}: " + ", ".join(f"{way} {s[-1]:.2f} s" for way, s in seconds.items())
                  + ("" if same else "  LABELS DIFFER"))  # fmt: skip
            if not same or len(labels["batched"]) != args.series:
                return 1
        for way, values in seconds.items():
            rate = args.series * 3600 / statistics.median(values)
            median = statistics.median(values)
            print(f"{way:14s} median {median:6.2f} s  best {min(values):6.2f} s  {rate:8.0f} series/h")
        ratio = statistics.median(seconds["one at a time"]) / statistics.median(seconds["batched"])
        best = min(seconds["one at a time"]) / min(seconds["batched"])
        print(f"batched / one at a time, series per hour: {ratio:.2f} median, {best:.2f} best "
              "(target 1.5 on a GPU; none on the CPU)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
