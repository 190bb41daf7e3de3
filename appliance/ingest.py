"""The gateway's instance sink: encrypt, write durably, index with group commit, then return.

``store`` returns only after the object file is fsynced and its index row is committed, so the
gateway's success status always means "durable". Concurrent associations share one committer
thread that commits every waiting row in one transaction (one fsync for many instances).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field

from sqlmodel import Session, select

from appliance.context import Appliance
from appliance.db.tables import Instance, Patient, Series, SeriesState, Study, utcnow
from appliance.keys import WrappedKey
from appliance.store import object_id_for
from dicom_gateway import status
from dicom_gateway.errors import RejectedInstance
from dicom_gateway.received import ReceivedInstance

log = logging.getLogger(__name__)

_LOCK_STRIPES = 64
_BATCH_MAX = 128
_COMMIT_WAIT_SECONDS = 120.0


@dataclass
class _Pending:
    instance: ReceivedInstance
    object_id: str
    size: int
    wrapped: WrappedKey
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    pk: int | None = None


class InstanceIndex:
    """Implements the gateway's InstanceSink on the appliance's store and database."""

    def __init__(self, app: Appliance) -> None:
        self.app = app
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._commit_loop, name="index-commit", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def store(self, instance: ReceivedInstance) -> int:
        """Store and index ``instance`` (or find it stored already); return its row id."""
        object_id = object_id_for("instance", instance.sop_instance_uid)
        with self._locks[hash(object_id) % _LOCK_STRIPES]:
            existing = self._indexed_pk(instance.sop_instance_uid)
            if existing is not None:
                log.info("instance %s already stored; resend acknowledged", instance.sop_instance_uid)
                return existing
            data = instance.part10()
            wrapped = self.app.store.put(object_id, data)
            pending = _Pending(instance, object_id, len(data), wrapped)
            self._queue.put(pending)
            if not pending.done.wait(_COMMIT_WAIT_SECONDS) or pending.error is not None:
                self.app.store.delete(object_id)
                reason = type(pending.error).__name__ if pending.error else "index commit timed out"
                raise RejectedInstance(status.OUT_OF_RESOURCES, f"could not index instance ({reason})")
            assert pending.pk is not None
            return pending.pk

    def _indexed_pk(self, sop_instance_uid: str) -> int | None:
        with Session(self.app.engine) as session:
            return session.exec(
                select(Instance.id).where(Instance.sop_instance_uid == sop_instance_uid)
            ).first()

    # -- committer thread -------------------------------------------------------------------
    def _commit_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < _BATCH_MAX:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with Session(self.app.engine) as session:
                for pending in batch:
                    self._add(session, pending)
                session.commit()
        except Exception as exc:
            if len(batch) == 1:
                log.error("index commit failed (%s)", type(exc).__name__)
                batch[0].error = exc
                batch[0].done.set()
                return
            for pending in batch:  # isolate the row that fails; commit the others
                self._commit([pending])
            return
        for pending in batch:
            pending.done.set()

    def _add(self, session: Session, pending: _Pending) -> None:
        instance = pending.instance
        fields = self.app.fields
        identity = instance.patient
        lookup = fields.lookup(identity.issuer, identity.patient_id)
        patient = session.exec(select(Patient).where(Patient.lookup == lookup)).first()
        if patient is None:
            patient = Patient(
                lookup=lookup,
                name_enc=fields.encrypt("patient.name", identity.name),
                patient_id_enc=fields.encrypt("patient.patient_id", identity.patient_id),
                birth_date_enc=fields.encrypt("patient.birth_date", identity.birth_date),
            )
            session.add(patient)
            session.flush()
        study = session.exec(select(Study).where(Study.study_uid == instance.study_uid)).first()
        if study is None:
            study = Study(study_uid=instance.study_uid, patient_pk=patient.id)
            session.add(study)
            session.flush()
        series = session.exec(
            select(Series).where(
                Series.called_ae == instance.called_ae, Series.series_uid == instance.series_uid
            )
        ).first()
        if series is None:
            series = Series(
                study_pk=study.id,
                series_uid=instance.series_uid,
                called_ae=instance.called_ae,
                modality=instance.modality,
            )
        series.instance_count += 1
        series.last_received_at = utcnow()
        series.state = SeriesState.RECEIVING
        series.completed_at = None
        session.add(series)
        session.flush()
        row = Instance(
                sop_instance_uid=instance.sop_instance_uid,
                sop_class_uid=instance.sop_class_uid,
                transfer_syntax_uid=instance.transfer_syntax_uid,
                series_pk=series.id,
                source_ae=instance.calling_ae,
                size=pending.size,
                object_id=pending.object_id,
                kek_id=pending.wrapped.kek_id,
                wrapped_key=pending.wrapped.blob,
        )
        session.add(row)
        session.flush()
        pending.pk = row.id
