"""Research export: a release and a pull, each against its plain-tool peer, in one run.

Release (de-identify + PHI gate + upload to S3): ``appliance datasets release NAME --to cloud`` as a
whole process, start-up included, against the two steps a site would otherwise script, run one
after the other as whole processes: ``appliance anonymize IN OUT`` (the same engine, profile and
worker processes) of the same instances, then a plain boto3 upload of every output file (8
threads): ``upload_file`` with boto3's default transfer settings, as the issue names it, and, as a
second peer, ``put_object`` of the file's bytes, one request and no transfer manager, which was
about 10% quicker here for files this size. Pull: ``research pull URL/NAME/vN DIR`` as a whole
process (signature, every hash, the files, then the NIfTI volumes and datalist.json) against a
plain boto3 download of the same objects (8 threads, no checks): ``get_object`` streamed to a file,
one request per object, the fastest plain boto3 way for objects this size (``download_file`` asks
for each object's size first, a second request that made that peer 1.7 times slower here). The S3
server is moto's standalone server on loopback (``moto[server]``) for both sides; each round
writes to a new bucket, so no round finds what an earlier one uploaded, and the two sides
alternate. Each ratio is given three ways: of the sides' median times, of their best times, and
the median of each round's own ratio (a round runs the two sides back to back, so a slow stretch
of the machine slows both). Beside the times it prints the CPU seconds each side cost, its
processes' (worker processes included) and the S3 server's: on a small machine both sides are
bound by the same cores, and this shows where.

    python benchmarks/research_export.py [--count 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from appliance.context import open_appliance  # noqa: E402
from appliance.home import init_home  # noqa: E402
from testbed.peak_rss import PeakRss  # noqa: E402
from testbed.processes import APPLIANCE, REPO, run_cli  # noqa: E402
from testbed.research import S3_ENV, s3_server, store_datasets  # noqa: E402
from testbed.synthetic import FakePatient, ct_series, write_series  # noqa: E402

ENV = {**os.environ, **S3_ENV}
UPLOAD = """
import sys, boto3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
endpoint, bucket, root = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint)
files = [p for p in Path(root).rglob("*") if p.is_file()]
with ThreadPoolExecutor(8) as pool:
    list(pool.map(lambda p: s3.upload_file(str(p), bucket, p.relative_to(root).as_posix()), files))
"""
PUT = UPLOAD.replace(
    "s3.upload_file(str(p), bucket, p.relative_to(root).as_posix())",
    "s3.put_object(Bucket=bucket, Key=p.relative_to(root).as_posix(), Body=p.read_bytes())",
)
DOWNLOAD = """
import sys, boto3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
endpoint, bucket, prefix, root = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint)
keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])]
def get(key):
    target = Path(root) / key
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(1 << 20):
            out.write(chunk)
with ThreadPoolExecutor(8) as pool:
    list(pool.map(get, keys))
"""


PEAKS: dict[str, int] = {}  # the largest resident memory of each command's process tree


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], server: psutil.Process) -> tuple[float, float, float]:
    """Wall seconds of ``command``, the CPU seconds of its process tree (its worker processes are
    reaped before it ends, so theirs count) and those of the S3 server meanwhile."""
    children, served = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)), sum(server.cpu_times()[:2])
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=ENV
    )
    rss = PeakRss(process.pid)
    _, err = process.communicate()
    taken = time.perf_counter() - started
    name = " ".join(command[1:5])
    PEAKS[name] = max(PEAKS.get(name, 0), rss.stop())
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed: {err[-2000:]}")
    own = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - children
    return taken, own, sum(server.cpu_times()[:2]) - served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        work = Path(tmp)
        patients = [FakePatient(f"Bench^Patient{n}", f"PID-{n}", "19700101") for n in range(4)]
        datasets = [
            ds for n, p in enumerate(patients) for ds in ct_series(args.count // 4, p, size=512, seed=n)
        ]
        files = write_series(work / "in", datasets)
        home = work / "home"
        init_home(home)
        app = open_appliance(home)
        try:
            store_datasets(app, datasets)
        finally:
            app.close()
        key = work / "release.pem"
        key.write_text(run_cli(home, "datasets", "signing-key").stdout)
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(files)} CT instances of 512x512 ({size_mb:.0f} MB), 4 patients, {args.rounds} rounds")
        sides = ("release", "anonymize+upload", "anonymize+put", "pull", "download")
        times: dict[str, list[float]] = {k: [] for k in sides}
        cpu: dict[str, list[tuple[float, float]]] = {k: [] for k in times}  # (its processes, the server)
        with s3_server(work / "moto.log") as s3:
            client, server = s3.client(), psutil.Process(s3.process.pid)
            for round_no in range(args.rounds):
                ours, peers, putters = f"ours-{round_no}", f"peer-{round_no}", f"put-{round_no}"
                for bucket in (ours, peers, putters):
                    client.create_bucket(Bucket=bucket)
                run_cli(home, "workspaces", "add", ours, "--s3", f"s3://{ours}/ws", "--endpoint", s3.endpoint)
                anon, put, pulled, plain = (
                    work / f"{what}-{round_no}" for what in ("anon", "put", "pull", "down")
                )
                release_commands = {
                    "release": [
                        [*APPLIANCE, "datasets", "release", f"r{round_no}", "--to", ours, "--home", str(home)]
                    ],
                    "anonymize+upload": [
                        [*APPLIANCE, "anonymize", str(work / "in"), str(anon), "--home", str(home)],
                        [sys.executable, "-c", UPLOAD, s3.endpoint, peers, str(anon)],
                    ],
                    "anonymize+put": [
                        [*APPLIANCE, "anonymize", str(work / "in"), str(put), "--home", str(home)],
                        [sys.executable, "-c", PUT, s3.endpoint, putters, str(put)],
                    ],
                }
                url = f"s3://{ours}/ws/r{round_no}/v1"
                trust = ["--trust", str(key), "--endpoint", s3.endpoint]
                pull_commands = {
                    "pull": [[sys.executable, "-m", "workspace.cli", "pull", url, str(pulled), *trust]],
                    "download": [[sys.executable, "-c", DOWNLOAD, s3.endpoint, ours, "ws/", str(plain)]],
                }
                for commands in (release_commands, pull_commands):
                    names = list(commands) if round_no % 2 == 0 else list(commands)[::-1]  # alternate
                    for name in names:
                        runs = [timed(command, server) for command in commands[name]]
                        times[name].append(sum(run[0] for run in runs))
                        cpu[name].append((sum(run[1] for run in runs), sum(run[2] for run in runs)))
        count = len(files)
        for name, values in times.items():
            print(f"{name:18s} median {statistics.median(values):6.2f} s  best {min(values):6.2f} s  "
                  f"{count / statistics.median(values):6.1f} inst/s")  # fmt: skip
        for name, spent in cpu.items():
            own, served = (statistics.median(part) for part in zip(*spent, strict=True))
            print(f"{name:18s} CPU median {own + served:5.2f} s: its processes {own:5.2f} s, "
                  f"S3 server {served:5.2f} s")  # fmt: skip
        pairs = (
            ("release", "anonymize+upload", 1.0),
            ("release", "anonymize+put", 1.0),
            ("pull", "download", 0.8),
        )
        for ours, peer, goal in pairs:
            median = statistics.median(times[peer]) / statistics.median(times[ours])
            best = min(times[peer]) / min(times[ours])
            paired = statistics.median(p / o for p, o in zip(times[peer], times[ours], strict=True))
            print(f"{ours} / {peer} speed: {median:.2f} median, {best:.2f} best, "
                  f"{paired:.2f} median of the rounds' own ratios (goal >= {goal})")  # fmt: skip
        release = max(peak for name, peak in PEAKS.items() if "datasets release" in name)
        print(f"release peak RSS (the command and its de-identifying processes): {release / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
