"""De-identify a file or a folder of DICOM files into a folder, offline.

Outputs are named by their new UIDs (``<study>/<series>/<instance>.dcm``), never by the input's names
(which can hold PHI), and written atomically. The same input, secret and profile give byte-identical
output. A file that is not DICOM is skipped; one that cannot be read or de-identified is counted as
failed with the kind of error (never its text, which could quote a value).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from anonymizer.engine import Deidentifier, Outcome, PatientLink
from anonymizer.report import Report


@dataclass
class Summary:
    written: int = 0
    quarantined: int = 0
    failed: int = 0
    skipped: int = 0
    reports: list[Report] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.written} de-identified, {self.quarantined} quarantined, "
            f"{self.failed} failed, {self.skipped} not DICOM"
        )


def input_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    return sorted(path for path in source.rglob("*") if path.is_file())


def _write(target: Path, relative: Path, data: bytes) -> None:
    path = target / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".partial")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _component(uid: str, fallback: str) -> str:
    return uid if uid and all(c.isdigit() or c == "." for c in uid) and not uid.startswith(".") else fallback


def _relative(outcome: Outcome) -> Path:
    study = _component(outcome.study_uid, "no-study")
    series = _component(outcome.series_uid, "no-series")
    return Path(study) / series / f"{_component(outcome.report.sop_instance_uid, 'no-instance')}.dcm"


def deidentify_files(
    files: list[Path],
    source: Path,
    target: Path,
    deidentifier: Deidentifier,
    on_patient: Callable[[PatientLink], None] | None = None,
) -> Iterator[Report]:
    """De-identify each file into ``target``; yield each one's report (a progress bar follows it)."""
    for path in files:
        name = str(path.relative_to(source)) if path != source else path.name
        try:
            dataset = dcmread(path)
        except InvalidDicomError:
            yield Report(source=name, skipped=True)
            continue
        except Exception as error:  # unreadable: reported by kind only
            yield Report(source=name, failed=f"cannot be read ({type(error).__name__})")
            continue
        try:
            outcome = deidentifier.deidentify(dataset, name)
        except Exception as error:
            yield Report(source=name, failed=f"de-identification failed ({type(error).__name__})")
            continue
        if outcome.encoded is not None:
            _write(target, _relative(outcome), outcome.encoded)
            if on_patient is not None and outcome.patient is not None:
                on_patient(outcome.patient)
        yield outcome.report


def summarise(reports: list[Report]) -> Summary:
    summary = Summary(reports=reports)
    for report in reports:
        if report.skipped:
            summary.skipped += 1
        elif report.failed:
            summary.failed += 1
        elif report.quarantined:
            summary.quarantined += 1
        else:
            summary.written += 1
    return summary
