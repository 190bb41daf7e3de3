"""The clinical store as DICOMweb sees it, through the eyes of the person calling.

``CallerCatalogue`` is a request's view over the ``ClinicalRecords``: only the studies in the
caller's scope (a clinician limited to sources or modalities) or under a live break-glass grant;
every query is a Query audit event (110112) and every retrieval a DICOM Instances Accessed event
(110103) naming the patient and the study; a retrieval outside the scope is refused (403) and
recorded as a failed access. STOW-RS stores through the same checks and writer as C-STORE,
recorded as Instances Transferred; a SEG stored so that corrects an AI result (OHIF's segmentation
mode saves its edits over STOW-RS) is recorded as the caller's correction of that result.
"""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset
from pydicom.uid import SegmentationStorage
from sqlmodel import Session, select

from appliance.access import break_glass
from appliance.db.tables import Decision, InferenceResult, Instance, Series, Source
from appliance.errors import AccessRefused, NotFound
from appliance.review import assessments, corrections
from appliance.review.assessments import Assessment
from appliance.security.keys import WrappedKey
from appliance.web.api.deps import Caller
from appliance.web.clinical_records import SERIES_TAGS, ClinicalRecords, StudyRow, element
from audit.events import Action, AuditEvent, EventID, Outcome, ParticipantObject
from dicom_gateway import status
from dicom_gateway.dicomweb.catalogue import StoredInstance
from dicom_gateway.dicomweb.query import Query
from dicom_gateway.dicomweb.stow import StowOutcome
from dicom_gateway.errors import DicomwebRefused, RejectedInstance
from dicom_gateway.limits import check_room
from dicom_gateway.received import ReceivedInstance, instance_from_part10

log = logging.getLogger(__name__)

# the source AE title recorded for instances stored over STOW-RS (the person is in the audit event)
STOW_SOURCE_AE = "DICOMWEB"


class CallerCatalogue:
    """One request's catalogue: the caller's scope, and the audit of what they query and read."""

    def __init__(self, records: ClinicalRecords, caller: Caller) -> None:
        self.records, self.app, self.caller = records, records.app, caller

    # -- scope ----------------------------------------------------------------------------------------
    def _allowed_aes(self, session: Session) -> set[str] | None:
        names = self.caller.user.sources
        if not names:
            return None
        rows = session.exec(select(Source).where(Source.name.in_(names))).all()  # type: ignore[attr-defined]
        return {row.ae_title for row in rows}

    def _in_scope(self, row: StudyRow, aes: set[str] | None, granted: set[str]) -> bool:
        if row.study_uid in granted:
            return True
        modalities = set(self.caller.user.modalities)
        return (aes is None or bool(row.source_aes & aes)) and (
            not modalities or bool(row.modalities & modalities)
        )

    def visible_rows(self, session: Session) -> list[StudyRow]:
        """The caller's studies as index rows (UIDs, modalities, counts: no patient data, no audit)."""
        return self._visible(session)

    def _visible(self, session: Session, study_uid: str | None = None) -> list[StudyRow]:
        aes = self._allowed_aes(session)
        granted = break_glass.granted_studies(self.app, self.caller.user)
        return [r for r in self.records.study_rows(session, study_uid) if self._in_scope(r, aes, granted)]

    # -- audit ----------------------------------------------------------------------------------------
    def _audit_query(self, level: str, query: Query, study_uid: str | None) -> None:
        detail = {"level": level, "keys": query.keys, "study": study_uid}
        self.app.audit.emit(
            AuditEvent(
                event_id=EventID.QUERY,
                action=Action.EXECUTE,
                outcome=Outcome.SUCCESS,
                type_code="QIDO-RS",
                participants=(self.caller.participant,),
                objects=(ParticipantObject("query", level, detail),),
                description=f"DICOMweb search for {level} on {query.describe() or 'no keys'}",
            )
        )

    def _audit_access(
        self, study_uid: str, patient_id: str, count: int, ok: bool, how: str = "WADO-RS"
    ) -> None:
        objects = [ParticipantObject("study", study_uid, {"instances": count})]
        if patient_id:
            objects.insert(0, ParticipantObject("patient", patient_id))
        self.app.audit.emit(
            AuditEvent(
                event_id=EventID.INSTANCES_ACCESSED,
                action=Action.READ,
                outcome=Outcome.SUCCESS if ok else Outcome.SERIOUS_FAILURE,
                type_code=how,
                participants=(self.caller.participant,),
                objects=tuple(objects),
                description=f"{count} instance(s) read ({how})"
                if ok
                else "refused: outside the user's scope",
            )
        )

    # -- the Catalogue protocol -----------------------------------------------------------------------
    def studies(self, query: Query) -> list[dict]:
        """The visible studies that match. An exact value (a patient ID, an accession number) is
        looked up in an index first, so that only its studies are matched attribute by attribute."""
        self._audit_query("studies", query, None)
        with self.app.session() as session:
            rows = self._visible(session)
            for tag, value in query.exact_keys().items():
                wanted = self.records.having(session, rows, tag, value)
                rows = [row for row in rows if row.pk in wanted]
            records = (self.records.study_record(session, row) for row in rows)
            return [record for record in records if query.matches(record)]

    def _series_rows(self, session: Session, study_uid: str | None) -> list[tuple[StudyRow, Series]]:
        studies = {row.pk: row for row in self._visible(session, study_uid)}
        rows = session.exec(select(Series).where(Series.study_pk.in_(list(studies)))).all()  # type: ignore[attr-defined]
        return [(studies[s.study_pk], s) for s in rows]

    def _instances_of(self, session: Session, series: Series) -> list[Instance]:
        return list(
            session.exec(select(Instance).where(Instance.series_pk == series.id).order_by(Instance.id))  # type: ignore[arg-type]
        )

    def series(self, study_uid: str | None, query: Query) -> list[dict]:
        self._audit_query("series", query, study_uid)
        records = []
        with self.app.session() as session:
            for study, series in self._series_rows(session, study_uid):
                instances = self._instances_of(session, series)
                if not instances:
                    continue
                header = self.records.header(instances[0])
                record = {tag: element for tag, element in header.items() if tag in SERIES_TAGS}
                record["0020000D"] = element("UI", study.study_uid)
                record["0020000E"] = element("UI", series.series_uid)
                record["00080060"] = element("CS", series.modality) if series.modality else {"vr": "CS"}
                record["00201209"] = element("IS", len(instances))
                records.append(record)
        return records

    def instances(self, study_uid: str | None, series_uid: str | None, query: Query) -> list[dict]:
        self._audit_query("instances", query, study_uid)
        records = []
        with self.app.session() as session:
            for study, series in self._series_rows(session, study_uid):
                if series_uid is not None and series.series_uid != series_uid:
                    continue
                for row in self._instances_of(session, series):
                    record = dict(self.records.header(row))
                    record["0020000D"] = element("UI", study.study_uid)
                    record["0020000E"] = element("UI", series.series_uid)
                    record["00080016"] = element("UI", row.sop_class_uid)
                    record["00080018"] = element("UI", row.sop_instance_uid)
                    records.append(record)
        return records

    def open_study(self, study_uid: str) -> dict:
        """A study's record for its review page: read (audited with its patient) when in scope;
        refused (403, audited as a failed access) when not; 404 when there is no such study."""
        with self.app.session() as session:
            (study,) = self.records.study_rows(session, study_uid) or [None]
            if study is None:
                raise NotFound(f"no study {study_uid}")
            summary = self.records.summary(session, study.pk)
            granted = break_glass.granted_studies(self.app, self.caller.user)
            if not self._in_scope(study, self._allowed_aes(session), granted):
                self._audit_access(study_uid, _patient_id(summary), 0, ok=False, how="Study page")
                raise AccessRefused(
                    "this study is outside your scope; break the glass with a reason to open it"
                )
            record = self.records.study_record(session, study)
        self._audit_access(study_uid, _patient_id(summary), study.instance_count, ok=True, how="Study page")
        return record

    def retrieve(
        self, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None
    ) -> list[StoredInstance]:
        """One lookup of the study and its scope, one query for its instances (their columns only:
        a series of hundreds of rows made as ORM objects cost milliseconds before the first byte)."""
        with self.app.session() as session:
            (study,) = self.records.study_rows(session, study_uid) or [None]
            if study is None:
                raise DicomwebRefused(404, "no such study")
            granted = break_glass.granted_studies(self.app, self.caller.user)
            summary = self.records.summary(session, study.pk)
            if not self._in_scope(study, self._allowed_aes(session), granted):
                self._audit_access(study_uid, _patient_id(summary), 0, ok=False)
                raise DicomwebRefused(
                    403, "this study is outside your scope; POST /api/break-glass with a reason to open it"
                )
            statement = (
                select(
                    Instance.sop_instance_uid,
                    Instance.transfer_syntax_uid,
                    Instance.size,
                    Instance.object_id,
                    Instance.kek_id,
                    Instance.wrapped_key,
                )
                .join(Series, Instance.series_pk == Series.id)  # type: ignore[arg-type]
                .where(Series.study_pk == study.pk)
                .order_by(Series.id, Instance.id)  # type: ignore[arg-type]
            )
            if series_uid is not None:
                statement = statement.where(Series.series_uid == series_uid)
            if instance_uid is not None:
                statement = statement.where(Instance.sop_instance_uid == instance_uid)
            found = [self._stored(*row) for row in session.exec(statement)]
        if not found:
            raise DicomwebRefused(404, "no such series or instance in this study")
        self._audit_access(study_uid, _patient_id(summary), len(found), ok=True)
        return found

    def store(
        self, parts: list[bytes], study_uid: str | None, correcting: InferenceResult | None = None
    ) -> StowOutcome:
        """Store ``parts``; a stored SEG that corrects an AI result (``correcting``, or the newest on
        the series it names) is recorded as the caller's correction of it."""
        outcome, keys, segs = StowOutcome(), [], []
        seen: dict[bool, tuple[set[str], set[str]]] = {True: (set(), set()), False: (set(), set())}
        for part in parts:
            instance, code = None, status.SUCCESS
            try:
                instance = self._checked(part, study_uid)
                keys.append(self.records.writer().store(instance))
            except RejectedInstance as rejected:
                log.warning("STOW-RS instance refused with 0x%04X: %s", rejected.status, rejected.comment)
                code = rejected.status
            except Exception as exc:  # the message may hold PHI: its kind only
                log.error("STOW-RS instance failed internally (%s)", type(exc).__name__)
                code = status.PROCESSING_FAILURE
            sop = (instance.sop_class_uid, instance.sop_instance_uid) if instance else ("", "")
            if code == status.SUCCESS:
                outcome.stored.append(sop)
                if instance is not None and instance.sop_class_uid == SegmentationStorage:
                    segs.append(instance)
            else:
                outcome.failed.append((*sop, code))
            if instance is not None:
                seen[code == status.SUCCESS][0].add(instance.patient.patient_id)
                seen[code == status.SUCCESS][1].add(instance.study_uid)
        for ok, count in ((True, len(outcome.stored)), (False, len(outcome.failed))):
            if count:
                self._audit_transfer(ok, count, *seen[ok])
        if keys:
            self.app.audit.flush()
            self.records.writer().receipts_recorded(keys)
        for seg in segs:
            self._record_correction(corrections.header(seg.part10()), correcting)
        return outcome

    def _record_correction(self, seg: Dataset, correcting: InferenceResult | None) -> None:
        result = correcting or corrections.corrected_result(self.app, seg)
        if result is not None:
            correction = Assessment(Decision.CORRECTED, corrected_seg_uid=str(seg.SOPInstanceUID))
            assessments.record(self.app, self.records.writer(), result, correction, self.caller.participant)

    def _checked(self, part: bytes, study_uid: str | None) -> ReceivedInstance:
        dicom = self.app.settings.dicom
        check_room(len(part), dicom.max_instance_bytes, dicom.min_free_bytes, self.app.store.root)
        instance = instance_from_part10(part, STOW_SOURCE_AE, dicom.ae_title)
        if study_uid is not None and instance.study_uid != study_uid:
            raise RejectedInstance(status.DATASET_DOES_NOT_MATCH_SOP_CLASS, "not of the study posted to")
        return instance

    def _audit_transfer(self, ok: bool, count: int, patients: set[str], studies: set[str]) -> None:
        self.app.audit.emit(
            AuditEvent(
                event_id=EventID.INSTANCES_TRANSFERRED,
                action=Action.CREATE,
                outcome=Outcome.SUCCESS if ok else Outcome.MINOR_FAILURE,
                type_code="STOW-RS",
                participants=(self.caller.participant,),
                objects=(
                    *(ParticipantObject("patient", pid) for pid in sorted(patients)),
                    *(ParticipantObject("study", uid) for uid in sorted(studies)),
                ),
                description=f"instances={count}" + ("" if ok else " refused"),
            )
        )

    def _stored(
        self, sop_instance_uid: str, syntax: str, size: int, object_id: str, kek_id: str, wrapped: bytes
    ) -> StoredInstance:
        store, key = self.app.store, WrappedKey(kek_id, wrapped)
        return StoredInstance(
            sop_instance_uid,
            syntax,
            size,
            lambda: store.get(object_id, key),
            lambda: store.get_header(object_id, key),
        )


def _patient_id(summary: dict) -> str:
    values = summary.get("00100020", {}).get("Value") or [""]
    return str(values[0])
