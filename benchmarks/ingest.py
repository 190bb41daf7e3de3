"""Ingest throughput: the appliance vs Orthanc vs dcmtk's storescp, in one run.

Sends the same synthetic 512x512 CT instances over 4 parallel storescu associations to each
receiver in turn and prints instances/s for each, the ratios, and the appliance's peak RSS.
The appliance (all its processes: main and gateway workers) encrypts, fsyncs and indexes
every instance before acknowledging it; Orthanc
(Debian package, SQLite index) and storescp write plain files. dcmtk tools run with
TCP_NODELAY=1 (without it Nagle's algorithm makes them many times slower on loopback).

    python benchmarks/ingest.py [--count 500] [--parallel 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed.dcmtk import dcmtk  # noqa: E402
from testbed.processes import ApplianceProcess, OrthancProcess, free_port, run_cli, wait_for  # noqa: E402
from testbed.synthetic import ct_series, write_series  # noqa: E402

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def send(files: list[Path], port: int, called: str, parallel: int) -> float:
    """Seconds to send every file over ``parallel`` concurrent storescu associations."""
    chunks = [files[i::parallel] for i in range(parallel)]
    started = time.perf_counter()
    senders = [
        subprocess.Popen(
            [dcmtk("storescu"), "-aet", "SCU", "-aec", called, "127.0.0.1", str(port), *map(str, chunk)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=DCMTK_ENV,
        )
        for chunk in chunks
    ]
    for sender in senders:
        _, err = sender.communicate()
        if sender.returncode != 0:
            raise RuntimeError(f"storescu failed: {err.decode()[-500:]}")
    return time.perf_counter() - started


class PeakRss:
    """Peak resident memory of a process and its children (the gateway worker processes)."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                tree = [self.process, *self.process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def bench_appliance(files: list[Path], work: Path, parallel: int, round_no: int) -> tuple[float, int]:
    home = work / f"appliance-{round_no}"
    run_cli(home, "init")
    run_cli(home, "sources", "add", "bench", "--ae", "SCU", "--host", "127.0.0.1")
    appliance = ApplianceProcess(
        home,
        work / f"appliance-{round_no}.log",
        {"APPLIANCE_DICOM__MIN_FREE_BYTES": "0", "APPLIANCE_INFERENCE__ENABLED": "false"},
    ).start()
    assert appliance.process is not None
    rss = PeakRss(appliance.process.pid)
    try:
        seconds = send(files, appliance.dicom_port, "APPLIANCE", parallel)
    finally:
        peak = rss.stop()
        appliance.stop()
    stored = list((home / "store" / "objects").rglob("*.enc"))
    if len(stored) != len(files):
        raise RuntimeError(f"appliance stored {len(stored)} of {len(files)}")
    return seconds, peak


def bench_orthanc(files: list[Path], work: Path, parallel: int, round_no: int) -> float:
    orthanc = OrthancProcess(work / f"orthanc-{round_no}").start()
    try:
        seconds = send(files, orthanc.dicom_port, "ORTHANC", parallel)
        if len(orthanc.instances()) != len(files):
            raise RuntimeError("Orthanc did not store every instance")
    finally:
        orthanc.stop()
    return seconds


def bench_storescp(files: list[Path], work: Path, parallel: int, round_no: int) -> float:
    out = work / f"storescp-{round_no}"
    out.mkdir()
    port = free_port()
    server = subprocess.Popen(
        [dcmtk("storescp"), "--output-directory", str(out), "-aet", "STORESCP", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=DCMTK_ENV,
    )
    try:
        wait_for(
            lambda: (
                subprocess.run(
                    [dcmtk("echoscu"), "-aec", "STORESCP", "127.0.0.1", str(port)], capture_output=True
                ).returncode
                == 0
            ),
            10,
            "storescp",
        )
        seconds = send(files, port, "STORESCP", parallel)
    finally:
        server.terminate()
        server.wait()
    if len(list(out.iterdir())) != len(files):
        raise RuntimeError("storescp did not store every instance")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="best of N rounds per receiver")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        files = write_series(work / "in", ct_series(args.count, size=512))
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"{args.count} CT instances, 512x512, {size_mb:.0f} MB, {args.parallel} parallel associations")
        best = {"appliance": float("inf"), "orthanc": float("inf"), "storescp": float("inf")}
        peak = 0
        for round_no in range(args.rounds):
            seconds, rss = bench_appliance(files, work, args.parallel, round_no)
            best["appliance"] = min(best["appliance"], seconds)
            peak = max(peak, rss)
            best["orthanc"] = min(best["orthanc"], bench_orthanc(files, work, args.parallel, round_no))
            best["storescp"] = min(best["storescp"], bench_storescp(files, work, args.parallel, round_no))
        rate = {name: args.count / seconds for name, seconds in best.items()}
        for name, value in rate.items():
            print(f"{name:10s} {value:8.1f} instances/s")
        print(f"appliance / orthanc   = {rate['appliance'] / rate['orthanc']:.2f}  (goal >= 1.5)")
        print(f"appliance / storescp  = {rate['appliance'] / rate['storescp']:.2f}  (goal >= 0.5)")
        print(f"appliance peak RSS    = {peak / 1e6:.0f} MB  (goal < 500)")


if __name__ == "__main__":
    main()
