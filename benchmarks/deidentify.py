"""De-identification: dicognito, deid and this appliance on the same generated CT instances.

Generates N 512x512 CT instances (10 patients) with PHI planted in the header, private tags, nested
sequences and free-text comments (testbed/planted.py), then runs, one after the other, on the
same files from disk to disk:

- dicognito 0.19 (``Anonymizer().anonymize`` per dataset, default settings),
- deid 0.4 (``replace_identifiers`` with its default recipe, private tags removed),
- ours (``Deidentifier`` with the ``research`` profile: profile, pseudonyms, free text, PHI gate),
  in one process and in one process per CPU (what ``appliance anonymize`` does by default).

It prints instances/s for each (one-time start-up excluded and shown apart: presidio and spaCy load
once per process) and how many planted PHI strings a plain case-insensitive byte search finds in
each tool's output (distinct strings, and file-string pairs), then ours/dicognito speed.

    python benchmarks/deidentify.py [--count 1000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pydicom import dcmread  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from anonymizer.batch import default_workers  # noqa: E402
from testbed.planted import patients, planted_ct  # noqa: E402

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


def run_ours(files: list[Path], out: Path, workers: int) -> float:
    start = time.perf_counter()
    from anonymizer import free_text
    from anonymizer.batch import deidentify_files
    from anonymizer.engine import Deidentifier
    from anonymizer.profile import named_profile

    deidentifier = Deidentifier(bytes(range(32)), named_profile("research"))
    if workers == 1:
        free_text.warm_up()
    setup = time.perf_counter() - start
    reports = deidentify_files(files, files[0].parent, out, deidentifier, workers=workers)
    first = next(reports)  # with workers, start-up (presidio and spaCy in each process) ends here
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deid-bench-") as scratch:
        root = Path(scratch)
        source = root / "in"
        source.mkdir()
        planted = generate(source, args.count)
        files = sorted(source.glob("*.dcm"))
        print(
            f"{len(files)} CT instances of 512x512, {PATIENTS} patients, {len(planted)} planted PHI strings"
        )
        rates = {}
        header = ("tool", "inst/s", "start-up s", "written", "leaked strings", "leaks")
        print(
            f"{header[0]:<12} "
            + " ".join(f"{h:>{w}}" for h, w in zip(header[1:], (8, 10, 8, 15, 7), strict=True))
        )
        workers = default_workers()
        tools = [
            ("dicognito", run_dicognito),
            ("deid", run_deid),
            ("ours", partial(run_ours, workers=1)),
            (f"ours x{workers}", partial(run_ours, workers=workers)),
        ]
        for name, run in tools:
            out = root / name
            out.mkdir()
            start = time.perf_counter()
            setup = run(files, out)
            seconds = time.perf_counter() - start - setup
            distinct, pairs, written = leaks(out, planted)
            rates[name] = len(files) / seconds
            print(f"{name:<12} {rates[name]:>8.1f} {setup:>10.2f} {written:>8} {distinct:>15} {pairs:>7}")
            shutil.rmtree(out)
        print(f"ours/dicognito speed, one process: {rates['ours'] / rates['dicognito']:.2f}")
        print(
            f"ours/dicognito speed, {workers} processes (the CLI's default here): "
            f"{rates[f'ours x{workers}'] / rates['dicognito']:.2f} (goal: at least 1.0)"
        )


if __name__ == "__main__":
    main()
