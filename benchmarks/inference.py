"""Inference latency: the appliance end to end vs the bare MONAI inference, in one run.

A synthetic 512x512x200 CT phantom series (0.7 x 0.7 x 1.5 mm) is sent with storescu to
``appliance serve`` (demo model, Orthanc as the PACS destination). Measured:

- appliance: from storescu's exit (its last C-STORE acknowledged and the association released)
  to the SEG being accepted by Orthanc, minus the configured quiet period (assembly waits that
  long by design): decrypt, decode, volume, the bundle's preprocessing, sliding-window inference,
  inversion to the source grid, SEG and SR, encrypted store, C-STORE to the PACS. Several series
  (``--series``, new UIDs each) are sent one after another to the same appliance, as a PACS
  would; the median is compared (this machine's run-to-run noise is several tenths of a second).
- bare MONAI: the same network and sliding-window inferer on the same preprocessed tensor,
  already in memory, in the benchmark's process: once cold before the appliance starts, then one
  run after each series (once its SR has arrived and the appliance is idle), so that both sides
  are measured in the same stretch of this noisy machine's time; the median is compared. It runs
  with the network as MONAI builds it (the ratio's denominator), and again as the appliance's
  network stage runs it (on the CPU: channels-last, and a last batch of one window run as two;
  two logits reduced to their difference), to show the overhead apart from those gains.

It prints both, their ratios (median to median, and against the fastest bare run seen), and the
inference process's idle and peak RSS (the kernel's high-water mark, and as sampled every 200 ms)
against 4x the float32 size of the volume plus the model file.

    python benchmarks/inference.py [--slices 200] [--size 512] [--quiet 2] [--device cpu] [--series 3]
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.admin.model_registry import DEMO_DIRECTORY, DEMO_MODEL  # noqa: E402
from models import fast_paths  # noqa: E402
from models.two_class import LogitDifference  # noqa: E402
from models.volume import Volume  # noqa: E402
from testbed.bundles import demo_predictor  # noqa: E402
from testbed.dcmtk import storescu  # noqa: E402
from testbed.phantom import make_phantom  # noqa: E402
from testbed.processes import ApplianceProcess, OrthancProcess, run_cli, wait_for  # noqa: E402
from testbed.synthetic import phantom_series, write_series  # noqa: E402


class ChildRss:
    """Peak and idle RSS of each child process of the appliance, sampled every 200 ms."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak: dict[int, int] = {}
        self.now: dict[int, int] = {}
        self.idle: dict[int, int] = {}
        self.startup: dict[int, int] = {}  # the peak up to the idle mark: loading and warm-up
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def mark_idle(self) -> None:
        """Take each child's RSS as it is now (the model loaded and warmed up) as its idle RSS."""
        self.idle, self.startup = dict(self.now), dict(self.peak)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by the appliance's main process and by each child, by pid."""
        used = {"main": sum(self.process.cpu_times()[:2])}
        for child in self.process.children(recursive=True):
            used[str(child.pid)] = sum(child.cpu_times()[:2])
        return used

    def _run(self) -> None:
        # Listing the children walks every process on the machine: done once every 5 s, not per
        # sample, so that the sampler takes as little CPU as it can from the appliance it measures.
        children: list[psutil.Process] = []
        listed = 0.0
        while not self._stop.wait(0.2):
            try:
                if time.monotonic() - listed > 5:
                    children, listed = self.process.children(recursive=True), time.monotonic()
                for child in children:
                    rss = self.now[child.pid] = child.memory_info().rss
                    self.peak[child.pid] = max(self.peak.get(child.pid, 0), rss)
            except psutil.Error:
                listed = 0.0  # a child ended: list them again

    def stop(self) -> tuple[int, int, int, int]:
        """The child whose RSS grew most (the inference process): its sampled peak, idle and start-up
        peak RSS, and the kernel's record of its largest RSS at any moment (start-up included)."""
        self._stop.set()
        self._thread.join()
        pid = max(self.peak, key=lambda p: self.peak[p] - self.idle.get(p, 0))
        return self.peak[pid], self.idle.get(pid, 0), self.startup.get(pid, 0), _high_water_mark(pid)


def _high_water_mark(pid: int) -> int:
    """The process's ``VmHWM`` (Linux), in bytes; 0 where the system keeps none."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class OrthancInstances:
    """The number of instances in Orthanc, over one kept-alive HTTP connection. Measured: 80 polls
    took 0.08 s of this process's CPU so, 0.23 s through httpx (one new connection each), which
    polling every 50 ms while a series runs would take from the two cores the appliance uses."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection: http.client.HTTPConnection | None = None

    def __call__(self) -> int:
        try:
            return self._count()
        except (OSError, http.client.HTTPException):
            self.connection = None  # the server closed an idle connection: once more on a new one
            return self._count()

    def _count(self) -> int:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.connection.request("GET", "/instances")
        return len(json.loads(self.connection.getresponse().read()))


class BareInference:
    """The bundle's sliding-window inference on the preprocessed tensor, already in memory, in this
    process: with the network as MONAI builds it, and as the appliance's network stage runs it
    (on the CPU: channels-last, a last batch of one window run as two; for the demo model's two
    classes, each window's logits reduced to their difference). Each is run once cold at
    construction; :meth:`run` times one run of each, between the appliance's series, so that both
    sides are measured in the same stretch of the machine's time."""

    def __init__(self, hu: np.ndarray, spacing: tuple[float, float, float], device: str) -> None:
        self.predictor = demo_predictor(device)
        affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
        image = self.predictor.prepare(Volume(hu.astype(np.float32), affine, ()))[self.predictor.image_key]
        self.image = image[None].as_tensor().to(self.predictor.device)
        self.networks: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
            "monai": copy.deepcopy(self.predictor.network).to(memory_format=torch.contiguous_format),
            "appliance": LogitDifference(self.predictor.windows),
        }
        self.cold = {name: self._once(network) for name, network in self.networks.items()}
        self.runs: dict[str, list[float]] = {name: [] for name in self.networks}

    def _once(self, network: Callable[[torch.Tensor], torch.Tensor]) -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            self.predictor.inferer(self.image, network)
        if self.predictor.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    def run(self) -> None:
        for name, network in self.networks.items():
            self.runs[name].append(self._once(network))


def appliance_latency(
    series: list[list[Path]], work: Path, quiet: float, device: str, between: Callable[[], None]
) -> tuple[list[float], tuple[int, int, int, int], list[str]]:
    """Each series in turn, to one appliance, calling ``between`` after each once its SR has arrived:
    the series' seconds, RSS (sampled peak, idle, start-up peak, high-water mark), its stages."""
    orthanc = OrthancProcess(work / "orthanc").start()
    home = work / "home"
    run_cli(home, "init")
    run_cli(home, "sources", "add", "bench", "--ae", "SCU", "--host", "127.0.0.1")
    run_cli(home, "destinations", "add", "pacs", "--ae", "ORTHANC", "--host", "127.0.0.1",
            "--port", str(orthanc.dicom_port), "--results")  # fmt: skip
    env = {
        "APPLIANCE_ASSEMBLY__QUIET_SECONDS": str(quiet),
        "APPLIANCE_INFERENCE__DEVICE": device,
        "APPLIANCE_DICOM__MIN_FREE_BYTES": "0",
    }
    appliance = ApplianceProcess(home, work / "appliance.log", env).start()
    assert appliance.process is not None
    rss = ChildRss(appliance.process.pid)
    instances = OrthancInstances(orthanc.http_port)
    seconds, cpu = [], []
    try:
        time.sleep(15)  # the inference process starts and loads the model, as it does at boot
        rss.mark_idle()
        for number, files in enumerate(series, start=1):
            result = storescu(appliance.dicom_port, files, options=["-xs"])
            acknowledged, cpu_before = time.perf_counter(), rss.cpu_seconds()
            if result.returncode != 0:
                raise RuntimeError(f"storescu failed: {result.stderr[-500:]}")
            # SEG and SR go in one association, the SEG first
            wait_for(lambda: instances() >= 2 * number - 1, 1800, "the SEG", interval=0.05)  # noqa: B023
            accepted, cpu_after = time.perf_counter(), rss.cpu_seconds()
            seconds.append(accepted - acknowledged - quiet)
            cpu.append({pid: round(cpu_after[pid] - cpu_before.get(pid, 0.0), 2) for pid in cpu_after})
            wait_for(lambda: instances() >= 2 * number, 60, "the SR")  # noqa: B023
            between()
    finally:
        memory = rss.stop()
        appliance.stop()
        orthanc.stop()
    jobs = sorted(json.loads(run_cli(home, "jobs", "--json").stdout), key=lambda job: job["id"])
    stages = [
        f"{job['outcome'].rsplit('; seconds ', 1)[-1]}"
        f"{'' if 'prepared ahead' in job['outcome'] else ' (not prepared ahead)'}; CPU seconds: {used}"
        for job, used in zip(jobs, cpu, strict=True)
    ]
    return seconds, memory, stages


def _listed(seconds: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--quiet", type=float, default=2.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--series", type=int, default=3, help="series sent one after another")
    args = parser.parse_args()
    fast_paths.install()  # as the inference process does at its start
    spacing = (0.7, 0.7, 1.5)
    shape = (args.size, args.size, args.slices)
    phantom = make_phantom(shape, spacing, seed=31337, lesion_count=3)
    with tempfile.TemporaryDirectory(prefix="inference-bench-") as tmp:
        work = Path(tmp)
        series = [
            write_series(work / f"in-{number}", phantom_series(phantom.hu, spacing))  # new UIDs each
            for number in range(args.series)
        ]
        bare = BareInference(phantom.hu, spacing, args.device)
        seconds, (peak, idle, startup, high_water), stages = appliance_latency(
            series, work, args.quiet, args.device, bare.run
        )
    monai, as_run = float(np.median(bare.runs["monai"])), float(np.median(bare.runs["appliance"]))
    median = float(np.median(seconds))
    volume_bytes = int(np.prod(shape)) * 4
    model_bytes = (DEMO_DIRECTORY / DEMO_MODEL / "models" / "model.pt").stat().st_size
    mib = 1024 * 1024
    print(
        f"series {args.size}x{args.size}x{args.slices}, device {args.device}, quiet period {args.quiet:g} s"
    )
    print(
        f"appliance, last ack to SEG accepted, minus quiet period: median {median:.2f} s "
        f"of {len(seconds)} series ({_listed(seconds)}; the first after start)"
    )
    for number, stage in enumerate(stages, start=1):
        print(f"  series {number}, stages in the inference process, seconds: {stage}")
    print(
        f"bare MONAI sliding-window inference on the same tensor, one run after each series: median "
        f"{monai:.2f} s ({_listed(bare.runs['monai'])}; cold, before the appliance: {bare.cold['monai']:.2f})"
    )
    print(
        f"  the same as the appliance's network stage runs it (on the CPU channels-last, a last "
        f"window paired; the logits' difference): median "
        f"{as_run:.2f} s ({_listed(bare.runs['appliance'])}; cold: {bare.cold['appliance']:.2f})"
    )
    fastest = min(bare.cold["monai"], *bare.runs["monai"])
    print(f"overhead ratio (median / bare median): {median / monai:.2f} (goal <= 1.3)")
    print(f"  against the fastest bare run (cold or after a series): {median / fastest:.2f}")
    print(
        f"  against the network as the appliance runs it (the appliance's own overhead): "
        f"{median / as_run:.2f}"
    )
    print(
        f"inference process peak RSS {high_water / mib:.0f} MiB (the kernel's high-water mark, start-up "
        f"included; sampled every 200 ms: {peak / mib:.0f} MiB, while starting: {startup / mib:.0f} MiB; "
        f"idle before the first series, model loaded and warmed up: {idle / mib:.0f} MiB; growth "
        f"{(high_water - idle) / mib:.0f} MiB); 4x float32 volume + model = "
        f"{(4 * volume_bytes + model_bytes) / mib:.0f} MiB"
    )


if __name__ == "__main__":
    main()
