"""A pulled release as MONAI training input: NIfTI volumes and ``datalist.json``.

Each image series becomes one NIfTI volume (uncompressed ``.nii``: int16 where the series' rescale
is whole, as CT's Hounsfield units are, else float32) with its geometry (``models.volume``: slices
sorted along their normal, RAS affine); a SEG of its study that references the series becomes its
label volume on the same grid (segment numbers as label values). Patients are split between
training and validation by a hash of their pseudonym, so one patient's studies never sit on both
sides and the split is the same at every pull of every version (with two patients or more, each
side has one).

A series' volume is written by a worker process as soon as its last file is verified, while the
rest of the release downloads (the pull spends most of its time waiting on the workspace, and the
volumes would otherwise come after it). The worker is forked before the downloads start, while the
pull has no thread but its own (a spawned one had to start an interpreter and import again what the
pull had, and took 0.3 s longer over 200 instances), and loads the volume libraries while the first
files download. It also parses a series' files as they come, a few at a time, so that once the
last is in only the last few wait to be read. The pull fetches the SEGs first, so the one that
labels a series is on disk before the series is done.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from anonymizer.release.manifest import ReleaseFile, ReleaseManifest
from anonymizer.release.stores import room_checked
from workspace.errors import ResearchError
from workspace.pull import FILES

if TYPE_CHECKING:
    from pydicom import Dataset

DATALIST = "datalist.json"
NIFTI = "nifti"
_RESULTS = {"SEG", "SR"}
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
_READ_AHEAD = 8  # a series' files verified are sent to be parsed this many at a time
_STOPPED = (
    "the process writing the NIfTI volumes stopped (out of memory?): run the same command again; "
    "the files already pulled stay"
)
_Result = TypeVar("_Result")


@dataclass(frozen=True)
class SeriesFiles:
    """One image series of the release: where it sits and its files, as pulled."""

    patient: str
    study: str
    series: str
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class VolumeWritten:
    """A series' volume (and label volume, if a SEG labels it), relative to the pulled folder."""

    image: str
    patient: str
    study: str
    series: str
    label: str | None = None


@lru_cache(maxsize=1024)
def _labelled_series(seg: Path) -> frozenset[str]:
    from pydicom import dcmread

    from models.seg_labels import referenced_series

    return frozenset(referenced_series(dcmread(seg, stop_before_pixels=True)))


def _load_libraries() -> None:
    """The worker's first task: its imports, done while the pull opens the workspace."""
    import nibabel  # noqa: F401

    import models.seg_labels  # noqa: F401
    import models.volume  # noqa: F401


_read_ahead: dict[Path, Dataset] = {}  # in the worker: files of series still downloading, parsed


def read_ahead(paths: tuple[Path, ...]) -> None:
    """Parse these files of a series still downloading (in the worker, while the pull goes on), so
    that once its last file is in, its volume waits only for the rest. Nobody waits on this task:
    a file it cannot parse is left out here, read again by :func:`write_volume`, and its error
    given there, with the series."""
    from pydicom import dcmread

    for path in paths:
        _read_ahead[path] = dcmread(path)


def write_volume(folder: Path, series: SeriesFiles, segs: tuple[Path, ...]) -> VolumeWritten:
    """Build ``series``' volume and write it, with the label volume of the last of ``segs`` (its
    study's) that references it (in a worker process; nothing here is shared with the pull)."""
    import nibabel as nib
    from pydicom import dcmread

    from models.seg_labels import label_volume
    from models.volume import build_volume

    parsed = (_read_ahead.pop(p) if p in _read_ahead else dcmread(p) for p in series.paths)
    volume = build_volume(parsed, whole=True)
    relative = Path(NIFTI) / series.patient / series.study / f"{series.series}.nii"
    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume.array, volume.affine_ras), folder / relative)
    written = VolumeWritten(relative.as_posix(), series.patient, series.study, series.series)
    labelling = [seg for seg in segs if series.series in _labelled_series(seg)]
    if not labelling:
        return written
    label = relative.with_name(f"{series.series}.label.nii.gz")
    image = nib.Nifti1Image(label_volume(dcmread(labelling[-1]), volume), volume.affine_ras)
    nib.save(image, folder / label)
    return replace(written, label=label.as_posix())


def _validation(patient: str, fraction: float) -> bool:
    return int.from_bytes(hashlib.sha256(patient.encode()).digest()[:8], "big") / 2**64 < fraction


def _split(patients: list[str], fraction: float) -> set[str]:
    """The patients to validate on."""
    validation = {p for p in patients if _validation(p, fraction)}
    first = min(patients, key=lambda p: hashlib.sha256(p.encode()).digest(), default="")
    if len(patients) < 2:  # one patient: it is all there is to train on
        return set()
    if not validation:  # at least one patient to validate on, and one to train on
        return {first}
    if validation == set(patients):
        validation.discard(first)
    return validation


def fetch_order(manifest: ReleaseManifest) -> list[ReleaseFile]:
    """The release's files in the order to fetch them: SEGs first (a series' volume needs the SEG
    that labels it), then the rest in the manifest's order."""
    return sorted(manifest.files, key=lambda entry: entry.sop_class != SEG_CLASS)


class VolumeWriter:
    """The volumes and ``datalist.json`` of one pull. Made first, it starts its worker (forked where
    the system forks), which loads its libraries while the pull opens the workspace and reads the
    manifest (the pull has no other thread yet, and a core to spare); :meth:`plan` takes the
    manifest and gives the files in the order to fetch them, :meth:`ready` is told each verified
    file, :meth:`finish` writes the datalist once every file is in. The worker builds the volumes,
    a series at a time."""

    def __init__(self, folder: Path, validation_fraction: float = 0.2) -> None:
        self.folder = folder
        self.validation_fraction = validation_fraction
        self._segs: dict[tuple[str, str], list[Path]] = {}  # by patient and study
        self._series_of: dict[str, tuple[str, str, str]] = {}
        self._files: dict[tuple[str, str, str], list[str]] = {}
        self._waiting: dict[tuple[str, str, str], int] = {}
        self._written: dict[tuple[str, str, str], Future[VolumeWritten]] = {}
        self._arrived: dict[tuple[str, str, str], list[Path]] = {}  # not yet read ahead
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self._pool = ProcessPoolExecutor(1, multiprocessing.get_context(method))
        self._pool.submit(_load_libraries)  # forks the worker now

    def __enter__(self) -> VolumeWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._pool.shutdown(wait=error is None, cancel_futures=error is not None)

    def plan(self, manifest: ReleaseManifest) -> list[ReleaseFile]:
        """Take the release's image series and SEGs; return its files in :func:`fetch_order`."""
        for entry in manifest.files:
            patient, study, series, _ = entry.path.split("/")
            if entry.sop_class == SEG_CLASS:  # a SEG labels a series of its own study
                self._segs.setdefault((patient, study), []).append(self.folder / FILES / entry.path)
            elif entry.modality not in _RESULTS:
                self._series_of[entry.path] = (patient, study, series)
                self._files.setdefault((patient, study, series), []).append(entry.path)
        self._waiting = {key: len(paths) for key, paths in self._files.items()}
        return fetch_order(manifest)

    def ready(self, entry: ReleaseFile) -> None:
        """``entry`` is in the folder, verified: the last file of a series starts its volume."""
        key = self._series_of.get(entry.path)
        if key is None:
            return
        self._waiting[key] -= 1
        if not self._waiting[key]:
            paths = tuple(self.folder / FILES / path for path in self._files[key])
            segs = tuple(self._segs.get(key[:2], ()))
            self._arrived.pop(key, None)  # what is left of it is read with the volume
            self._written[key] = self._submit(write_volume, self.folder, SeriesFiles(*key, paths), segs)
            return
        arrived = self._arrived.setdefault(key, [])
        arrived.append(self.folder / FILES / entry.path)
        if len(arrived) == _READ_AHEAD:
            self._submit(read_ahead, tuple(arrived))
            arrived.clear()

    def finish(self) -> dict[str, list[dict]]:
        """Wait for the volumes, write ``datalist.json`` and return it."""
        validation = _split(sorted({key[0] for key in self._files}), self.validation_fraction)
        datalist: dict[str, list[dict]] = {"training": [], "validation": []}
        with room_checked(self.folder):  # a full disk: one line, and the same command resumes
            for key in sorted(self._files):
                entry = {k: v for k, v in asdict(self._volume(key)).items() if v is not None}
                datalist["validation" if key[0] in validation else "training"].append(entry)
            (self.folder / DATALIST).write_text(json.dumps(datalist, indent=2))
        return datalist

    def _submit(self, task: Callable[..., _Result], *args: object) -> Future[_Result]:
        try:
            return self._pool.submit(task, *args)
        except BrokenProcessPool:
            raise ResearchError(_STOPPED) from None

    def _volume(self, key: tuple[str, str, str]) -> VolumeWritten:
        try:
            return self._written[key].result()
        except BrokenProcessPool:
            raise ResearchError(_STOPPED) from None
