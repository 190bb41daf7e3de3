"""The one writer of stored objects and their rows: encrypt, write durably, index, then return.

Instances from the network (the gateway's sink, ``store``) and results made here (``write``) go
through the same path. ``write`` returns only after the object file is fsynced and its index row
is committed, so the gateway's success status always means "durable". Concurrent writers share one
committer thread that commits every waiting row in one transaction (one fsync for many instances).
The other changes to Instance rows live here too: a receipt's audit mark, key rotation's re-wrap,
and the removal of rows whose file is gone (start-up reconciliation).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from appliance.context import Appliance
from appliance.db.tables import Instance, Patient, Series, SeriesState, Study, StudySummary, utcnow
from appliance.errors import ApplianceError
from appliance.security.keys import Keyring, WrappedKey
from appliance.storage import study_summary
from appliance.storage.store import new_object_id
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject
from dicom_gateway import status
from dicom_gateway.errors import RejectedInstance
from dicom_gateway.received import PatientIdentity, ReceivedInstance, content_digest, dataset_offset
from durable import take_batch

log = logging.getLogger(__name__)

_BATCH_MAX = 128
_REWRAP_BATCH = 500
_COMMIT_WAIT_SECONDS = 120.0
_PATIENT, _STUDY, _SERIES, _INSTANCE, _SUMMARY = (
    t.__table__  # type: ignore[attr-defined]
    for t in (Patient, Study, Series, Instance, StudySummary)
)


@dataclass(frozen=True)
class StoredCopy:
    """What is stored under a SOP Instance UID already: its content, whose it is."""

    content_digest: str
    patient_id: str
    study_uid: str


@dataclass(frozen=True)
class NewObject:
    """An object to store and index: its identity, whose it is, where it came from, its bytes."""

    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    modality: str
    transfer_syntax_uid: str
    patient: PatientIdentity
    source_ae: str
    called_ae: str
    part10: bytes
    header_length: int | None = None  # where the pixel data begins: the header is stored apart
    complete_series: bool = False  # results: their series is complete as written (no assembly, no job)
    receipt_audit_pending: bool = False  # a receipt whose transfer event the gateway writes later

    @classmethod
    def received(cls, instance: ReceivedInstance) -> NewObject:
        return cls(
            sop_class_uid=instance.sop_class_uid,
            sop_instance_uid=instance.sop_instance_uid,
            study_uid=instance.study_uid,
            series_uid=instance.series_uid,
            modality=instance.modality,
            transfer_syntax_uid=instance.transfer_syntax_uid,
            patient=instance.patient,
            source_ae=instance.calling_ae,
            called_ae=instance.called_ae,
            part10=instance.part10(),
            header_length=instance.part10_header_length(),
        )

    @classmethod
    def result(cls, dataset: Dataset, own_ae: str) -> NewObject:
        """An object this appliance made (a SEG, an SR), encoded once and never parsed again."""
        buffer = BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        return cls(
            sop_class_uid=str(dataset.SOPClassUID),
            sop_instance_uid=str(dataset.SOPInstanceUID),
            study_uid=str(dataset.StudyInstanceUID),
            series_uid=str(dataset.SeriesInstanceUID),
            modality=str(dataset.get("Modality", ""))[:16],
            transfer_syntax_uid=str(dataset.file_meta.TransferSyntaxUID),
            patient=PatientIdentity.of(dataset),
            source_ae=own_ae,
            called_ae=own_ae,
            part10=buffer.getvalue(),
            complete_series=True,
        )


@dataclass
class _Pending:
    instance: NewObject
    object_id: str
    size: int
    wrapped: WrappedKey
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    pk: int | None = None
    duplicate: bool = False


class ObjectWriter:
    """Stores objects durably and indexes them; also the gateway's InstanceSink."""

    def __init__(self, app: Appliance) -> None:
        self.app = app
        # row ids of patients, studies and series already in the database (committer thread only)
        self._known: dict[tuple[str, str], int] = {}
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._commit_loop, name="index-commit", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def store(self, instance: ReceivedInstance) -> int:
        """The gateway's sink: a received instance, written as any other object; the gateway
        records its transfer when the association ends (see :meth:`receipts_recorded`)."""
        return self.write(replace(NewObject.received(instance), receipt_audit_pending=True))

    def receipts_recorded(self, keys: list[object]) -> None:
        """The audit record of these instances' transfer is durable: no recovery needed at start."""
        mark_receipts_audited(self.app, [int(key) for key in keys if isinstance(key, int)])

    def write(self, instance: NewObject) -> int:
        """Store and index ``instance`` (or find it stored already); return its row id.

        Every write goes to a new random object id, so a resend never touches the stored copy:
        if the SOP Instance UID is already indexed (the unique index refuses the row), the new
        file is dropped. A resend of the same content (the dataset's SHA-256) is acknowledged as
        a success; one with other content is refused (``CONFLICTING_DUPLICATE``) and audited as a
        conflict naming both patients. No lookup before the write and no hash of the content:
        resends are rare, so both are paid only when one happens, and the hot path stays one insert.
        """
        dataset_offset(instance.part10)  # refuses a file that is not Part 10
        object_id = new_object_id()
        try:
            wrapped = self.app.store.put(object_id, instance.part10, instance.header_length)
        except ApplianceError as exc:  # disk full, I/O error, the key ring: out of resources to the peer
            log.error("could not store an instance (%s)", type(exc.__cause__ or exc).__name__)
            raise RejectedInstance(status.OUT_OF_RESOURCES, "could not store the instance") from exc
        pending = _Pending(instance, object_id, len(instance.part10), wrapped)
        self._queue.put(pending)
        if not pending.done.wait(_COMMIT_WAIT_SECONDS):
            # The row may still commit, so the file stays; if it never does, start-up
            # reconciliation quarantines it. Either way the peer was not told "stored".
            raise RejectedInstance(status.OUT_OF_RESOURCES, "could not index instance (commit timed out)")
        if pending.error is not None:
            self.app.store.delete(object_id)  # the transaction rolled back: no row points here
            reason = type(pending.error).__name__
            raise RejectedInstance(status.OUT_OF_RESOURCES, f"could not index instance ({reason})")
        assert pending.pk is not None
        if pending.duplicate:
            self.app.store.delete(object_id)
            stored = self._stored_copy(pending.pk)
            if stored.content_digest != content_digest(instance.part10):
                self._audit_conflict(instance, stored)
                raise RejectedInstance(
                    status.CONFLICTING_DUPLICATE, "SOP Instance UID already stored with other content"
                )
            log.info("instance %s already stored; resend acknowledged", instance.sop_instance_uid)
        return pending.pk

    def _stored_copy(self, pk: int) -> StoredCopy:
        """The stored instance ``pk``: its digest (rows written since ingest stopped hashing each
        instance have none: it is computed from the stored object), patient and study."""
        with self.app.engine.connect() as connection:
            row = connection.execute(
                select(
                    _INSTANCE.c.content_digest, _INSTANCE.c.object_id, _INSTANCE.c.kek_id,
                    _INSTANCE.c.wrapped_key, _STUDY.c.study_uid, _PATIENT.c.patient_id_enc,
                )
                .join(_SERIES, _SERIES.c.id == _INSTANCE.c.series_pk)
                .join(_STUDY, _STUDY.c.id == _SERIES.c.study_pk)
                .join(_PATIENT, _PATIENT.c.id == _STUDY.c.patient_pk)
                .where(_INSTANCE.c.id == pk)
            ).one()  # fmt: skip
        digest = row.content_digest or content_digest(
            self.app.store.get(row.object_id, WrappedKey(row.kek_id, row.wrapped_key))
        )
        patient_id = self.app.fields.decrypt("patient.patient_id", row.patient_id_enc)
        return StoredCopy(digest, patient_id, row.study_uid)

    def _audit_conflict(self, instance: NewObject, stored: StoredCopy) -> None:
        log.warning("instance refused: its SOP Instance UID is stored already with other content")
        self.app.audit.emit(
            AuditEvent(
                event_id=EventID.INSTANCES_TRANSFERRED,
                action=Action.CREATE,
                outcome=Outcome.MINOR_FAILURE,
                type_code="Conflicting Duplicate",
                participants=(Participant(instance.source_ae, None, is_requestor=True, role="Source"),),
                objects=(
                    ParticipantObject("patient", instance.patient.patient_id, {"copy": "refused"}),
                    ParticipantObject("patient", stored.patient_id, {"copy": "stored"}),
                    ParticipantObject("study", instance.study_uid, {"copy": "refused"}),
                    ParticipantObject("study", stored.study_uid, {"copy": "stored"}),
                    ParticipantObject("sop-instance", instance.sop_instance_uid),
                ),
                description="conflict: the SOP Instance UID is stored with other content; this copy refused",
            )
        )

    def _indexed_pk(self, sop_instance_uid: str) -> int | None:
        with self.app.engine.connect() as connection:
            return connection.execute(
                select(_INSTANCE.c.id).where(_INSTANCE.c.sop_instance_uid == sop_instance_uid)
            ).scalar()

    # -- committer thread -------------------------------------------------------------------
    def _commit_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            self._commit(take_batch(self._queue, first, _BATCH_MAX))

    def _commit(self, batch: list[_Pending], again: bool = False) -> None:
        created: dict[tuple[str, str], int] = {}
        try:
            with self.app.engine.begin() as connection:
                grown: Counter[tuple[int, bool]] = Counter()
                for pending in batch:
                    series_pk = self._series_pk(connection, pending.instance, created)
                    grown[series_pk, pending.instance.complete_series] += 1
                    pending.pk = self._insert_instance(connection, pending, series_pk)
                now = utcnow()
                for (series_pk, complete), count in grown.items():
                    state = SeriesState.COMPLETE if complete else SeriesState.RECEIVING
                    connection.execute(
                        _GROW_SERIES,
                        {"pk": series_pk, "count": count, "now": now, "state": state,
                         "completed_at": now if complete else None},
                    )  # fmt: skip
        except Exception as exc:
            if len(batch) == 1:
                if isinstance(exc, IntegrityError) and self._mark_duplicate(batch[0]):
                    return
                if isinstance(exc, IntegrityError) and not again:
                    # Another gateway process inserted the same new patient, study or series
                    # between this transaction's lookup and its insert: the lookup finds it now.
                    self._commit(batch, again=True)
                    return
                log.error("index commit failed (%s)", type(exc).__name__)
                batch[0].error = exc
                batch[0].done.set()
                return
            for pending in batch:  # isolate the row that fails; commit the others
                self._commit([pending])
            return
        self._known.update(created)
        for pending in batch:
            pending.done.set()

    def _mark_duplicate(self, pending: _Pending) -> bool:
        """A concurrent store of the same instance won the race: point at its row."""
        pk = self._indexed_pk(pending.instance.sop_instance_uid)
        if pk is None:
            return False
        pending.pk, pending.duplicate = pk, True
        pending.done.set()
        return True

    def _row_id(
        self,
        connection: Connection,
        created: dict[tuple[str, str], int],
        key: tuple[str, str],
        find: dict[str, str],
        row: Callable[[], dict[str, Any]],
        inserted: Callable[[int], object] | None = None,
    ) -> int:
        """The id of the patient, study or series ``key``: cached, found, or inserted (and then
        ``inserted`` called with it, in the same transaction)."""
        pk = self._known.get(key) or created.get(key)
        if pk is None:
            kind = key[0]
            pk = connection.execute(_FIND[kind], find).scalar()
            if pk is None:
                pk = connection.execute(_INSERT[kind], row()).inserted_primary_key[0]
                if inserted is not None:
                    inserted(pk)
        created[key] = pk
        return pk

    def _series_pk(
        self, connection: Connection, instance: NewObject, created: dict[tuple[str, str], int]
    ) -> int:
        fields = self.app.fields
        identity = instance.patient
        lookup = fields.lookup(identity.issuer, identity.patient_id)
        patient_pk = self._row_id(
            connection,
            created,
            ("patient", lookup),
            {"lookup": lookup},
            lambda: {
                "lookup": lookup,
                "name_enc": fields.encrypt("patient.name", identity.name),
                "patient_id_enc": fields.encrypt("patient.patient_id", identity.patient_id),
                "birth_date_enc": fields.encrypt("patient.birth_date", identity.birth_date),
                "created_at": utcnow(),
            },
        )
        study_pk = self._row_id(
            connection,
            created,
            ("study", instance.study_uid),
            {"study_uid": instance.study_uid},
            lambda: {"study_uid": instance.study_uid, "patient_pk": patient_pk, "created_at": utcnow()},
            # a new study's query attributes, from its first instance (once per study, not per instance)
            lambda pk: connection.execute(
                insert(_SUMMARY),
                {
                    "study_pk": pk,
                    "attributes_enc": study_summary.seal(fields, study_summary.summary_of(instance.part10)),
                },
            ),
        )
        return self._row_id(
            connection,
            created,
            ("series", f"{instance.called_ae}\\{instance.series_uid}"),
            {"called_ae": instance.called_ae, "series_uid": instance.series_uid},
            lambda: {
                "study_pk": study_pk,
                "series_uid": instance.series_uid,
                "called_ae": instance.called_ae,
                "modality": instance.modality,
                "state": SeriesState.RECEIVING,
                "instance_count": 0,
                "last_received_at": utcnow(),
            },
        )

    @staticmethod
    def _insert_instance(connection: Connection, pending: _Pending, series_pk: int) -> int:
        instance = pending.instance
        row = {
            "sop_instance_uid": instance.sop_instance_uid,
            "sop_class_uid": instance.sop_class_uid,
            "transfer_syntax_uid": instance.transfer_syntax_uid,
            "series_pk": series_pk,
            "source_ae": instance.source_ae,
            "size": pending.size,
            "object_id": pending.object_id,
            "kek_id": pending.wrapped.kek_id,
            "wrapped_key": pending.wrapped.blob,
            "received_at": utcnow(),
            "receipt_audited": not instance.receipt_audit_pending,
        }
        return connection.execute(_INSERT["instance"], row).inserted_primary_key[0]


def rewrap_object_keys(app: Appliance, keyring: Keyring) -> int:
    """Re-wrap every object's data key not under the active KEK (rotation); return how many."""
    changed = 0
    while True:
        with app.engine.begin() as connection:
            rows = connection.execute(
                select(_INSTANCE.c.id, _INSTANCE.c.object_id, _INSTANCE.c.kek_id, _INSTANCE.c.wrapped_key)
                .where(_INSTANCE.c.kek_id != keyring.active_id)
                .limit(_REWRAP_BATCH)
            ).all()
            for row in rows:
                wrapped = keyring.rewrap(WrappedKey(row.kek_id, row.wrapped_key), f"object:{row.object_id}")
                connection.execute(
                    update(_INSTANCE)
                    .where(_INSTANCE.c.id == row.id)
                    .values(kek_id=wrapped.kek_id, wrapped_key=wrapped.blob)
                )
        if not rows:
            return changed
        changed += len(rows)


def forget_missing(app: Appliance, object_ids: list[str]) -> list[str]:
    """Remove the rows of objects whose file is gone (so the index does not lie); return their
    SOP Instance UIDs. Their series count them no more."""
    forgotten: list[str] = []
    with app.engine.begin() as connection:
        for object_id in object_ids:
            row = connection.execute(
                select(_INSTANCE.c.id, _INSTANCE.c.series_pk, _INSTANCE.c.sop_instance_uid).where(
                    _INSTANCE.c.object_id == object_id
                )
            ).one_or_none()
            if row is None:
                continue
            connection.execute(_INSTANCE.delete().where(_INSTANCE.c.id == row.id))
            connection.execute(
                update(_SERIES)
                .where(_SERIES.c.id == row.series_pk)
                .values(instance_count=_SERIES.c.instance_count - 1)
            )
            forgotten.append(row.sop_instance_uid)
    return forgotten


def mark_receipts_audited(app: Appliance, pks: list[int]) -> None:
    """The transfer events of these receipts are durable (see ``NewObject.receipt_audit_pending``)."""
    with app.engine.begin() as connection:
        for start in range(0, len(pks), 500):
            connection.execute(
                update(_INSTANCE)
                .where(_INSTANCE.c.id.in_(pks[start : start + 500]))
                .values(receipt_audited=True)
            )


# Statements built once: the committer runs them for every instance.
_FIND = {
    "patient": select(_PATIENT.c.id).where(_PATIENT.c.lookup == bindparam("lookup")),
    "study": select(_STUDY.c.id).where(_STUDY.c.study_uid == bindparam("study_uid")),
    "series": select(_SERIES.c.id).where(
        _SERIES.c.called_ae == bindparam("called_ae"), _SERIES.c.series_uid == bindparam("series_uid")
    ),
}
_INSERT = {
    name: insert(table)
    for name, table in [
        ("patient", _PATIENT),
        ("study", _STUDY),
        ("series", _SERIES),
        ("instance", _INSTANCE),
    ]
}
_GROW_SERIES = (
    update(_SERIES)
    .where(_SERIES.c.id == bindparam("pk"))
    .values(
        instance_count=_SERIES.c.instance_count + bindparam("count"),
        last_received_at=bindparam("now"),
        state=bindparam("state"),
        completed_at=bindparam("completed_at"),
    )
)
