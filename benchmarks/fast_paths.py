"""What each library fast path still pays: the demo model's series with and without it, in one run.

Each configuration runs in a process of its own (a patch cannot be taken back), on the same
512x512x200 CT phantom (0.7 x 0.7 x 1.5 mm) held in memory, with the fast paths installed as
the inference process installs them except those the configuration leaves out, and its allocator
set as the inference process sets it (``appliance.runtime.heap``). Per round (the
predictor built and warmed up first, as the appliance does before its first series), the series
goes through ``models.pipeline``'s two steps as the inference process runs them: its preparation
(the volume and the bundle's preprocessing) and the network to the SEG and SR. Memory: what the
process holds before the rounds (the model, the series, the libraries' tables: ``held``), and each
step's peak, the kernel's high-water mark reset at the step's start less the RSS then (in the
appliance one series' preparation overlaps another's network, so each step's peak counts).

A fast path is compared with the configuration that differs from it only by that fast path. The
argmax one only acts where the two-class form does not (the demo model has two classes), so it is
measured with the two-class form left out on both sides. The last line compares the bundle's own
steps throughout (no fast path) with all of them.

    python benchmarks/fast_paths.py [--rounds 3] [--slices 200] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.runtime.heap import keep_freed_memory, return_freed_memory  # noqa: E402
from models import fast_paths  # noqa: E402

STAGES = ("preparation", "network to SEG and SR")  # models.pipeline's two steps

# (what is measured, the fast paths left out, the configuration it is compared with)
COMPARISONS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    *((name, (name,), ()) for name in fast_paths.FAST_PATHS if name != "argmax"),
    ("argmax", ("two_class", "argmax"), ("two_class",)),
    ("all of them", tuple(fast_paths.FAST_PATHS), ()),
]


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


class _InMemory:
    """The series as a SeriesSource: its datasets are their own headers and whole objects."""

    def __init__(self, datasets: list) -> None:
        self.headers = datasets

    def whole(self, header: Any) -> Any:
        return header


def child(without: list[str], rounds: int, shape: tuple[int, int, int]) -> None:
    """One configuration: print its per-round seconds and peaks by stage, as JSON."""
    keep_freed_memory()  # the inference process's allocator settings, before any thread starts
    fast_paths.install(without=without)
    from models import pipeline, results
    from models.routing import RoutingRule
    from testbed.bundles import demo_predictor
    from testbed.phantom import make_phantom
    from testbed.synthetic import phantom_series

    spacing = (0.7, 0.7, 1.5)
    phantom = make_phantom(shape, spacing, seed=31337, lesion_count=3)
    source = _InMemory(phantom_series(phantom.hu, spacing))
    del phantom
    predictor = demo_predictor("cpu")
    predictor.warm_up()
    results.warm_up(predictor.segments)
    return_freed_memory()  # as the inference process does after its warm-up
    rules = [RoutingRule(model=predictor.name)]
    held = _status_mib("VmRSS")  # the model, the series, the libraries' tables
    seconds: dict[str, list[float]] = {stage: [] for stage in STAGES}
    peaks: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def stage(name: str, work: Callable[..., Any], *args: Any) -> Any:
        Path("/proc/self/clear_refs").write_text("5")  # the high-water mark back to the RSS now
        before, started = _status_mib("VmRSS"), time.perf_counter()
        out = work(*args)
        seconds[name].append(time.perf_counter() - started)
        peaks[name].append(_status_mib("VmHWM") - before)
        return out

    for _ in range(rounds):
        return_freed_memory()  # as the inference process does before it prepares a series
        prepared = stage("preparation", pipeline.prepare_series, source, rules, lambda _name: predictor)
        stage("network to SEG and SR", pipeline.finish_series, prepared)
        del prepared
    print(json.dumps({"seconds": seconds, "peaks": peaks, "held": held}))


def run(without: tuple[str, ...], rounds: int, shape: tuple[int, int, int]) -> dict:
    command = [sys.executable, __file__, "--child", json.dumps(list(without)), "--rounds", str(rounds),
               "--size", str(shape[0]), "--slices", str(shape[2])]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def _total(measured: dict) -> float:
    """The median round's seconds, all stages together."""
    rounds = zip(*measured["seconds"].values(), strict=True)
    return float(np.median([sum(r) for r in rounds]))


def _summary(measured: dict) -> str:
    seconds = ", ".join(f"{s} {np.median(measured['seconds'][s]):.2f}" for s in STAGES)
    peaks = ", ".join(f"{s} +{max(measured['peaks'][s]):.0f}" for s in STAGES)
    return f"median {_total(measured):.2f} s ({seconds}); held {measured['held']:.0f} MiB; peaks MiB: {peaks}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = (args.size, args.size, args.slices)
    if args.child is not None:
        child(json.loads(args.child), args.rounds, shape)
        return
    measured: dict[tuple[str, ...], dict] = {}
    for _, without, baseline in COMPARISONS:
        for configuration in (baseline, without):
            if configuration not in measured:
                measured[configuration] = run(configuration, args.rounds, shape)
                label = "all fast paths" if not configuration else "without " + ", ".join(configuration)
                print(f"{label}: {_summary(measured[configuration])}", flush=True)
    print(f"\nseries {args.size}x{args.size}x{args.slices}, CPU, {args.rounds} rounds each; without / with")
    headings = [f"{stage + ' peak':>26}" for stage in STAGES]
    print(f"{'fast path':16} {'seconds':>20} {'held MiB':>18} " + " ".join(headings))
    for name, without, baseline in COMPARISONS:
        off, on = measured[without], measured[baseline]
        cells = [
            f"{_total(off):5.2f} / {_total(on):5.2f} {_total(off) / _total(on):5.2f}x",
            f"{off['held']:5.0f} / {on['held']:5.0f}",
        ]
        cells += [f"{max(off['peaks'][s]):5.0f} / {max(on['peaks'][s]):5.0f}" for s in STAGES]
        print(f"{name:16} {cells[0]:>20} {cells[1]:>18} " + " ".join(f"{c:>26}" for c in cells[2:]))


if __name__ == "__main__":
    main()
