"""Ingest throughput: the appliance vs Orthanc vs dcmtk's storescp, in one run.

Sends synthetic 512x512 CT instances over 4 parallel storescu associations to each receiver in
turn and prints instances/s for each (best and median of the rounds), the ratios, and the
appliance's peak RSS. Each receiver gets a study of its own each round (new UIDs), so no round
measures the skipping of duplicates; receivers alternate within each round.

Each peer in its best documented configuration:

- the appliance (all its processes: main and gateway workers) encrypts, fsyncs and indexes every
  instance before acknowledging it, on its embedded defaults (SQLite, local store);
- Orthanc, Debian's package, its storage and SQLite index as the package ships them, with
  ``TCP_NODELAY=1`` in its environment: its DICOM server is DCMTK's, which reads that variable,
  and without it Nagle's algorithm makes it about five times slower on loopback (our own
  sockets set TCP_NODELAY);
- dcmtk's storescp writing plain files, and the storescu senders, with ``TCP_NODELAY=1`` for
  the same reason.

    python benchmarks/ingest.py [--count 500] [--parallel 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testbed.dcmtk import dcmtk, storescu_parallel  # noqa: E402
from testbed.peak_rss import PeakRss  # noqa: E402
from testbed.processes import ApplianceProcess, OrthancProcess, free_port, run_cli, wait_for  # noqa: E402
from testbed.synthetic import ct_series, write_series  # noqa: E402

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


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
        seconds = storescu_parallel(appliance.dicom_port, files, "APPLIANCE", parallel)
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
        seconds = storescu_parallel(orthanc.dicom_port, files, "ORTHANC", parallel)
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
        seconds = storescu_parallel(port, files, "STORESCP", parallel)
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
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    receivers = {"appliance": bench_appliance, "orthanc": bench_orthanc, "storescp": bench_storescp}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        seconds: dict[str, list[float]] = {name: [] for name in receivers}
        peak = 0
        for round_no in range(args.rounds):
            for name, bench in receivers.items():
                folder = work / f"in-{name}-{round_no}"
                files = write_series(folder, ct_series(args.count, size=512, seed=round_no))  # a new study
                if round_no == 0 and name == "appliance":
                    size_mb = sum(f.stat().st_size for f in files) / 1e6
                    print(f"{args.count} CT instances, 512x512, {size_mb:.0f} MB, {args.parallel} parallel "
                          f"associations, {args.rounds} rounds")  # fmt: skip
                if name == "appliance":
                    taken, rss = bench_appliance(files, work, args.parallel, round_no)
                    peak = max(peak, rss)
                else:
                    taken = bench(files, work, args.parallel, round_no)
                seconds[name].append(taken)
                shutil.rmtree(folder)
        best = {name: args.count / min(values) for name, values in seconds.items()}
        median = {name: args.count / statistics.median(values) for name, values in seconds.items()}
        for name in receivers:
            print(f"{name:10s} {best[name]:8.1f} instances/s best, {median[name]:8.1f} median")
        for peer, goal in (("orthanc", 1.5), ("storescp", 0.5)):
            print(f"appliance / {peer:9s} = {best['appliance'] / best[peer]:.2f} best, "
                  f"{median['appliance'] / median[peer]:.2f} median  (goal >= {goal})")  # fmt: skip
        print(f"appliance peak RSS    = {peak / 1e6:.0f} MB  (goal < 500)")


if __name__ == "__main__":
    main()
