"""De-identify a file or a folder of DICOM files into a folder, offline.

Outputs are named by their new UIDs (``<study>/<series>/<instance>.dcm``), never by the input's names
(which can hold PHI), and written atomically. The same input, secret and profile give byte-identical
output. A file that is not DICOM is skipped; one that cannot be read, is not whole (cut short,
garbled: see :mod:`anonymizer.input_check`) or cannot be de-identified is counted as failed with
the kind of error (never its text, which could quote a value). No output replaces another: a second
object that maps to a written name fails, unless its bytes are the same (a rerun, or the same file
twice). A symbolic link under the source that leads outside it is not followed unless asked. Files
are shared among worker processes (one per CPU by default); reports come back in file order.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from anonymizer.engine import Deidentifier, Outcome, PatientLink
from anonymizer.errors import WorkerStopped
from anonymizer.input_check import incomplete
from anonymizer.report import Report
from anonymizer.shared_slots import SharedSlots


@dataclass
class Summary:
    written: int = 0
    quarantined: int = 0
    failed: int = 0
    skipped: int = 0

    def line(self) -> str:
        return (
            f"{self.written} de-identified, {self.quarantined} quarantined, "
            f"{self.failed} failed, {self.skipped} not DICOM"
        )


def input_files(source: Path, follow_links_out: bool = False) -> tuple[list[Path], list[Path]]:
    """(the files to read, the links under ``source`` leading outside it that are not followed)."""
    if source.is_file():
        return [source], []
    inside = source.resolve()
    files, refused = [], []
    for directory, subdirectories, names in os.walk(source, followlinks=follow_links_out):
        for name in [*names, *subdirectories]:
            path = Path(directory) / name
            if path.is_symlink() and not follow_links_out and not path.resolve().is_relative_to(inside):
                refused.append(path)
            elif name in names and path.is_file():
                files.append(path)
    return sorted(files), sorted(refused)


def link_refused(path: Path, source: Path) -> Report:
    return Report(source=str(path.relative_to(source)), failed="a link to outside the source (not followed)")


class OutputTaken(Exception):
    """Another object's output is at this name already, with other bytes."""


def _write(target: Path, relative: Path, data: bytes) -> None:
    """Write atomically, never over another object's output (the same bytes: a rerun, accepted)."""
    path = target / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    temporary.write_bytes(data)
    try:
        os.link(temporary, path)  # fails if the name is taken, atomically, whoever took it
    except FileExistsError:
        if path.read_bytes() != data:
            raise OutputTaken(str(relative)) from None
    finally:
        temporary.unlink()


def _component(uid: str, fallback: str) -> str:
    return uid if uid and all(c.isdigit() or c == "." for c in uid) and not uid.startswith(".") else fallback


def _relative(outcome: Outcome) -> Path:
    study = _component(outcome.study_uid, "no-study")
    series = _component(outcome.series_uid, "no-series")
    return Path(study) / series / f"{_component(outcome.report.sop_instance_uid, 'no-instance')}.dcm"


def _one(
    path: Path, source: Path, target: Path, deidentifier: Deidentifier
) -> tuple[Report, PatientLink | None]:
    name = str(path.relative_to(source)) if path != source else path.name
    try:
        dataset = dcmread(path)
    except InvalidDicomError:
        return Report(source=name, skipped=True), None
    except Exception as error:  # unreadable: reported by kind only
        return Report(source=name, failed=f"cannot be read ({type(error).__name__})"), None
    why = incomplete(dataset)
    if why is not None:
        return Report(source=name, failed=f"not whole: {why}"), None
    try:
        outcome = deidentifier.deidentify(dataset, name)
    except Exception as error:
        return Report(source=name, failed=f"de-identification failed ({type(error).__name__})"), None
    if outcome.encoded is None:
        return outcome.report, None
    try:
        _write(target, _relative(outcome), outcome.encoded)
    except OutputTaken:
        outcome.report.failed = "its output name is another object's, with other content (not overwritten)"
        return outcome.report, None
    return outcome.report, outcome.patient


_worker: tuple[Path, Path, Deidentifier] | None = None


def _start_worker(source: Path, target: Path, deidentifier: Deidentifier) -> None:
    global _worker
    _worker = (source, target, deidentifier)


def _in_worker(path: Path) -> tuple[Report, PatientLink | None]:
    assert _worker is not None
    source, target, deidentifier = _worker
    return _one(path, source, target, deidentifier)


@contextmanager
def _stopped_workers_reported() -> Iterator[None]:
    """A worker process that died (killed, out of memory) as WorkerStopped, in one line."""
    try:
        yield
    except BrokenProcessPool:
        raise WorkerStopped(
            "a de-identifying process stopped before it answered (killed, or out of memory?): "
            "run the same command again; what was done stays"
        ) from None


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def deidentify_files(
    files: list[Path],
    source: Path,
    target: Path,
    deidentifier: Deidentifier,
    on_patient: Callable[[PatientLink], None] | None = None,
    workers: int = 1,
) -> Iterator[Report]:
    """De-identify each file into ``target`` (in ``workers`` processes); yield reports in file order."""
    if workers <= 1 or len(files) < 2:
        results: Iterator[tuple[Report, PatientLink | None]] = (
            _one(path, source, target, deidentifier) for path in files
        )
        yield from _reported(results, on_patient)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with (
        _stopped_workers_reported(),
        ProcessPoolExecutor(
            workers, context, initializer=_start_worker, initargs=(source, target, deidentifier)
        ) as pool,
    ):
        yield from _reported(pool.map(_in_worker, files, chunksize=8), on_patient)


Key = TypeVar("Key", bound=Hashable)
_loaded_worker: tuple[Deidentifier, Callable[[Any], bytes], SharedSlots | None] | None = None


def _start_loading_worker(
    deidentifier: Deidentifier, load: Callable[[Any], bytes], slots: SharedSlots | None
) -> None:
    global _loaded_worker
    _loaded_worker = (deidentifier, load, slots)


def deidentify_encoded(data: bytes, deidentifier: Deidentifier, name: str = "") -> Outcome:
    """One Part 10 object given as bytes: its Outcome, with the SHA-256 of its output (hashed here,
    in the worker process, not in the one that gathers the outcomes); an object that cannot be read
    or de-identified comes back quarantined, with the kind of error (never its text)."""
    try:
        dataset = dcmread(BytesIO(data))
    except Exception as error:
        return Outcome(
            None, Report(source=name, quarantined=f"cannot be read ({type(error).__name__})"), None
        )
    why = incomplete(dataset)
    if why is not None:
        return Outcome(None, Report(source=name, quarantined=f"not whole: {why}"), None)
    try:
        outcome = deidentifier.deidentify(dataset, name)
    except Exception as error:
        report = Report(source=name, quarantined=f"de-identification failed ({type(error).__name__})")
        return Outcome(None, report, None)
    if outcome.encoded is not None:
        outcome.sha256 = hashlib.sha256(outcome.encoded).hexdigest()
    return outcome


@dataclass(frozen=True)
class _Returned:
    """A worker's answer: the Outcome, its encoded bytes left out when they are in the task's slot."""

    outcome: Outcome
    in_slot: int | None = None  # the length of the output written in the slot


def _loaded_in_worker(key: Any, slot: int) -> _Returned:
    assert _loaded_worker is not None
    deidentifier, load, slots = _loaded_worker
    outcome = deidentify_encoded(load(key), deidentifier)
    encoded = outcome.encoded
    if encoded is not None and slots is not None and slots.write(slot, encoded):
        outcome.encoded = None
        return _Returned(outcome, len(encoded))
    return _Returned(outcome)


def _given_in_worker(data: bytes) -> _Returned:
    assert _loaded_worker is not None
    return _Returned(deidentify_encoded(data, _loaded_worker[0]))


def deidentify_stream(
    keys: Iterable[Key],
    load: Callable[[Key], bytes],
    deidentifier: Deidentifier,
    workers: int,
    window: int = 16,
) -> Iterator[tuple[Key, Outcome]]:
    """De-identify the objects ``load(key)`` gives, in ``workers`` processes, yielding each as done.

    Where processes fork, each worker calls ``load`` itself (reading and decrypting in parallel,
    and no object's bytes cross a pipe on the way in) and writes its output to a slot of memory
    shared with this process (:mod:`anonymizer.shared_slots`: nor on the way out); where they are
    spawned, ``load`` runs here and stays here (whatever it holds, such as keys, is never pickled
    to a child) and outputs come back through the pipe. At most ``window`` objects are in the
    workers at once, so memory stays bounded however many come, and the caller can write those
    done while the next are de-identified."""
    if workers <= 1:
        for key in keys:
            yield key, deidentify_encoded(load(key), deidentifier)
        return
    forking = "fork" in multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if forking else "spawn")
    slots = SharedSlots(window) if forking else None
    initargs = (deidentifier, load if forking else _not_in_child, slots)
    try:
        with (
            _stopped_workers_reported(),
            ProcessPoolExecutor(
                workers, context, initializer=_start_loading_worker, initargs=initargs
            ) as pool,
        ):
            running: dict[Future[_Returned], tuple[Key, int]] = {}

            def finished(future: Future[_Returned]) -> tuple[Key, Outcome]:
                key, slot = running.pop(future)
                returned = future.result()
                if slots is not None:
                    if returned.in_slot is not None:
                        returned.outcome.encoded = slots.read(slot, returned.in_slot)
                    slots.give_back(slot)
                return key, returned.outcome

            for key in keys:
                if slots is not None:  # forked workers: each loads its own and writes to its slot
                    slot = slots.take()
                    task = pool.submit(_loaded_in_worker, key, slot)
                else:
                    slot, task = -1, pool.submit(_given_in_worker, load(key))
                running[task] = (key, slot)
                if len(running) >= window:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield finished(future)
            for future in list(running):
                yield finished(future)
    finally:
        if slots is not None:
            slots.close()


def _not_in_child(key: Any) -> bytes:
    raise AssertionError("spawned workers are given bytes, never a loader")


def _reported(
    results: Iterator[tuple[Report, PatientLink | None]], on_patient: Callable[[PatientLink], None] | None
) -> Iterator[Report]:
    for report, patient in results:
        if on_patient is not None and patient is not None:
            on_patient(patient)
        yield report


def summarise(reports: list[Report]) -> Summary:
    summary = Summary()
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
