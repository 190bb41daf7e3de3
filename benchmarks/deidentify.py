"""De-identification: dicognito, deid and this appliance on the same generated CT instances.

Generates N 512x512 CT instances (10 patients) with PHI planted in the header, private tags, nested
sequences and free-text comments (testbed/planted.py), then runs, one after the other, on the
same files from disk to disk.

As a user meets them (the ratio that counts): whole processes, start-up included, each tool's
command line at its defaults, alternating, ``--rounds`` times (median and best):

- dicognito 0.19: ``python -m dicognito --output-directory OUT IN`` (its console script is broken
  in 0.19; the module is the same program), default settings;
- ours: ``appliance anonymize IN OUT --key-file KEY`` (the ``research`` profile: profile,
  pseudonyms, free text, PHI gate; its default number of worker processes).

In one process, start-up excluded and shown apart (the per-instance cost): dicognito
(``Anonymizer().anonymize`` per dataset), deid 0.4 (``replace_identifiers``, default recipe,
private tags removed) and our engine in one process.

It prints instances/s for each and how many planted PHI strings a plain case-insensitive byte
search finds in each tool's output (distinct strings, and file-string pairs).

    python benchmarks/deidentify.py [--count 600] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydicom import dcmread  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from testbed.planted import patients, planted_ct  # noqa: E402
from testbed.processes import APPLIANCE, REPO  # noqa: E402

PATIENTS = 10


def generate(folder: Path, count: int) -> list[str]:
    people = patients(PATIENTS)
    per_patient = count // PATIENTS
    for person in people:
        study, series = generate_uid(), generate_uid()
        for index in range(per_patient):
            ds = planted_ct(person, index, size=512, study_uid=study, series_uid=series)
            ds.save_as(folder / f"{person.family}-{index:04d}.dcm", enforce_file_format=True)
    return sorted({s for person in people for s in person.strings})


def run_dicognito(files: list[Path], out: Path) -> float:
    start = time.perf_counter()
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer()
    setup = time.perf_counter() - start
    for path in files:
        ds = dcmread(path)
        anonymizer.anonymize(ds)
        ds.save_as(out / path.name)
    return setup


def run_deid(files: list[Path], out: Path) -> float:
    start = time.perf_counter()
    from deid.dicom import replace_identifiers

    setup = time.perf_counter() - start
    paths = [str(p) for p in files]
    replace_identifiers(
        dicom_files=paths, save=True, output_folder=str(out), remove_private=True, overwrite=True
    )
    return setup


def run_ours(files: list[Path], out: Path, workers: int = 1) -> float:
    start = time.perf_counter()
    from anonymizer.batch import deidentify_files
    from anonymizer.engine import Deidentifier
    from anonymizer.profile import named_profile

    deidentifier = Deidentifier(bytes(range(32)), named_profile("research"))
    setup = time.perf_counter() - start
    reports = deidentify_files(files, files[0].parent, out, deidentifier, workers=workers)
    first = next(reports)  # with workers, start-up (forking them) ends here
    if workers > 1:
        setup = time.perf_counter() - start
    for report in [first, *reports]:
        if report.quarantined or report.failed:
            print(f"  ours: {report.source}: {report.quarantined or report.failed}", file=sys.stderr)
    return setup


def leaks(out: Path, planted: list[str]) -> tuple[int, int, int]:
    """(distinct planted strings found, file-string pairs found, files written)."""
    found: set[str] = set()
    pairs = files = 0
    needles = [(s, s.lower().encode()) for s in planted]
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        files += 1
        data = path.read_bytes().lower()
        for value, needle in needles:
            if needle in data:
                found.add(value)
                pairs += 1
    return len(found), pairs, files


def whole_process(command: list[str]) -> float:
    """Seconds for one command, start-up included, as a user runs it."""
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env={**os.environ})
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed: {finished.stderr[-500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deid-bench-") as scratch:
        root = Path(scratch)
        source = root / "in"
        source.mkdir()
        planted = generate(source, args.count)
        files = sorted(source.glob("*.dcm"))
        key = root / "pseudonymisation.key"
        key.write_bytes(os.urandom(32))
        key.chmod(0o600)
        print(
            f"{len(files)} CT instances of 512x512, {PATIENTS} patients, {len(planted)} planted PHI strings"
        )

        commands = {
            "dicognito": lambda out: [sys.executable, "-m", "dicognito", "--output-directory", str(out),
                                      "--quiet", str(source)],
            "ours": lambda out: [*APPLIANCE, "anonymize", str(source), str(out), "--key-file", str(key)],
        }  # fmt: skip
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        found: dict[str, tuple[int, int, int]] = {}
        for round_no in range(args.rounds):
            for name, command in commands.items():
                out = root / f"{name}-{round_no}"
                seconds[name].append(whole_process(command(out)))
                found[name] = leaks(out, planted)
                shutil.rmtree(out)
        print("\nwhole processes, start-up included (as a user runs them):")
        print(
            f"{'tool':<12} {'median s':>9} {'best s':>7} {'inst/s':>7} {'written':>8} "
            f"{'leaked strings':>15} {'leaks':>6}"
        )
        for name, values in seconds.items():
            distinct, pairs, written = found[name]
            rate = len(files) / statistics.median(values)
            print(f"{name:<12} {statistics.median(values):>9.2f} {min(values):>7.2f} {rate:>7.1f} "
                  f"{written:>8} {distinct:>15} {pairs:>6}")  # fmt: skip
        ratio = statistics.median(seconds["dicognito"]) / statistics.median(seconds["ours"])
        best = min(seconds["dicognito"]) / min(seconds["ours"])
        print(
            f"ours / dicognito speed, whole processes: {ratio:.2f} median, {best:.2f} best "
            "(goal: at least 1.0)"
        )

        print("\nin one process, start-up excluded (the per-instance cost):")
        print(f"{'tool':<12} {'inst/s':>8} {'start-up s':>10} {'leaked strings':>15}")
        for name, run in (("dicognito", run_dicognito), ("deid", run_deid), ("ours", run_ours)):
            out = root / f"in-process-{name}"
            out.mkdir()
            start = time.perf_counter()
            setup = run(files, out)
            taken = time.perf_counter() - start - setup
            distinct, _, _ = leaks(out, planted)
            print(f"{name:<12} {len(files) / taken:>8.1f} {setup:>10.2f} {distinct:>15}")
            shutil.rmtree(out)


if __name__ == "__main__":
    main()
