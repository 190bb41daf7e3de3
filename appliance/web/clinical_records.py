"""The decrypted query attributes of the clinical store, in this process's memory only.

``ClinicalRecords`` (one per HTTP service) owns them: study summaries (written encrypted to
``study_summary`` with a study's first instance; read from the store for older studies), each
study's QIDO record and an index of exact values, the study rows (sources, modalities, counts)
read again only when an instance has come or gone, and the headers of series and instances read
from the encrypted store the first time they are asked for. It also owns the writer that STOW-RS
stores through.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from io import BytesIO

from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError as RowExists
from sqlmodel import Session, select

from appliance.context import Appliance
from appliance.db.tables import Instance, Series, Study, StudySummary
from appliance.security.keys import WrappedKey
from appliance.storage import study_summary
from appliance.storage.writer import ObjectWriter

_SERIES_KEYWORDS = "SeriesNumber SeriesDescription SeriesDate SeriesTime BodyPartExamined".split()
_INSTANCE_KEYWORDS = "InstanceNumber Rows Columns NumberOfFrames BitsAllocated".split()
SERIES_TAGS = frozenset(f"{tag_for_keyword(k):08X}" for k in _SERIES_KEYWORDS)


def element(vr: str, *values: object) -> dict:
    """A DICOM JSON element."""
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


@dataclass(frozen=True)
class StudyRow:
    pk: int
    study_uid: str
    source_aes: frozenset[str]
    modalities: frozenset[str]
    series_count: int
    instance_count: int


@dataclass
class ClinicalRecords:
    """The decrypted query attributes of the clinical store, in this process's memory only."""

    app: Appliance
    _studies: dict[int, dict] = field(default_factory=dict)
    _headers: dict[int, dict] = field(default_factory=dict)  # instance pk -> series and instance attributes
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _writer: ObjectWriter | None = None
    _rows: dict[str, StudyRow] = field(default_factory=dict)
    _rows_version: tuple = ()
    _records: dict[int, tuple[StudyRow, dict]] = field(default_factory=dict)
    _value_index: dict[str, dict[str, set[int]]] = field(default_factory=dict)  # tag -> value -> studies
    _value_index_version: tuple = ()

    def writer(self) -> ObjectWriter:
        """The writer STOW-RS stores through (made at the first store: most services never need it)."""
        with self._lock:
            if self._writer is None:
                self._writer = ObjectWriter(self.app)
            return self._writer

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def _read(self, row: Instance) -> Dataset:
        data = self.app.store.get_header(row.object_id, WrappedKey(row.kek_id, row.wrapped_key))
        return dcmread(BytesIO(data), stop_before_pixels=True)

    def study_rows(self, session: Session, study_uid: str | None = None) -> list[StudyRow]:
        """Every study with its sources, modalities and counts (or the one asked for); read again
        from the database only when an instance has come or gone since the last read."""
        version = tuple(session.exec(select(func.max(Instance.id), func.count())).one())
        with self._lock:
            if self._rows_version != version:
                self._rows = {row.study_uid: row for row in self._read_rows(session)}
                self._rows_version = version
            rows = self._rows
        if study_uid is None:
            return list(rows.values())
        return [rows[study_uid]] if study_uid in rows else []

    @staticmethod
    def _read_rows(session: Session) -> list[StudyRow]:
        studies = session.exec(select(Study.id, Study.study_uid)).all()
        modalities: dict[int, set[str]] = defaultdict(set)
        series_of: dict[int, int] = {}
        for series_pk, study_pk, modality in session.exec(
            select(Series.id, Series.study_pk, Series.modality)
        ):
            series_of[series_pk] = study_pk
            if modality:
                modalities[study_pk].add(modality)
        sources: dict[int, set[str]] = defaultdict(set)
        counts: dict[int, int] = defaultdict(int)
        series_counts: dict[int, int] = defaultdict(int)
        statement = select(Instance.series_pk, Instance.source_ae, func.count()).group_by(
            Instance.series_pk, Instance.source_ae
        )
        seen_series: set[int] = set()
        for series_pk, source_ae, count in session.exec(statement):
            study_pk = series_of.get(series_pk)
            if study_pk is None:
                continue
            sources[study_pk].add(source_ae)
            counts[study_pk] += count
            if series_pk not in seen_series:
                seen_series.add(series_pk)
                series_counts[study_pk] += 1
        return [
            StudyRow(
                pk, uid, frozenset(sources[pk]), frozenset(modalities[pk]), series_counts[pk], counts[pk]
            )
            for pk, uid in studies
            if counts[pk]
        ]

    def summary(self, session: Session, study_pk: int) -> dict:
        """The study's patient and study attributes, as DICOM JSON."""
        with self._lock:
            cached = self._studies.get(study_pk)
        if cached is not None:
            return cached
        stored = session.get(StudySummary, study_pk)  # written with the study's first instance
        if stored is not None:
            summary = study_summary.unseal(self.app.fields, stored.attributes_enc)
        else:  # a study stored before summaries were written at ingest
            first = session.exec(
                select(Instance)
                .join(Series, Instance.series_pk == Series.id)  # type: ignore[arg-type]
                .where(Series.study_pk == study_pk)
                .order_by(Instance.id)  # type: ignore[arg-type]
                .limit(1)
            ).one()
            summary = study_summary.json_of(self._read(first), study_summary.STUDY_KEYWORDS)
            encrypted = study_summary.seal(self.app.fields, summary)
            try:
                with Session(self.app.engine) as writer:
                    writer.add(StudySummary(study_pk=study_pk, attributes_enc=encrypted))
                    writer.commit()
            except RowExists:
                pass  # another request wrote it first: the same attributes
        with self._lock:
            self._studies[study_pk] = summary
        return summary

    def study_record(self, session: Session, row: StudyRow) -> dict:
        """The study's QIDO record: its summary and the attributes computed from the index (kept
        until the next change of the index, as the rows are)."""
        with self._lock:
            cached = self._records.get(row.pk)
        if cached is not None and cached[0] is row:
            return cached[1]
        record = {
            **self.summary(session, row.pk),
            "00080061": element("CS", *sorted(row.modalities)),
            "00201206": element("IS", row.series_count),
            "00201208": element("IS", row.instance_count),
        }
        with self._lock:
            self._records[row.pk] = (row, record)
        return record

    def having(self, session: Session, rows: list[StudyRow], tag: str, value: str) -> set[int]:
        """The studies among ``rows`` whose attribute ``tag`` holds exactly ``value``, from an index
        made at the first such query and kept until the index's next change."""
        with self._lock:
            index = self._value_index.get(tag) if self._value_index_version == self._rows_version else None
        if index is None:
            index = defaultdict(set)
            for row in self.study_rows(session):
                for found in self.study_record(session, row).get(tag, {}).get("Value", []):
                    index[str(found)].add(row.pk)
            with self._lock:
                if self._value_index_version != self._rows_version:
                    self._value_index, self._value_index_version = {}, self._rows_version
                self._value_index[tag] = index
        return index.get(value, set()) & {row.pk for row in rows}

    def header(self, row: Instance) -> dict:
        """The series and instance attributes of one instance, as DICOM JSON."""
        assert row.id is not None
        with self._lock:
            cached = self._headers.get(row.id)
        if cached is None:
            cached = study_summary.json_of(self._read(row), _SERIES_KEYWORDS + _INSTANCE_KEYWORDS)
            with self._lock:
                self._headers[row.id] = cached
        return cached
