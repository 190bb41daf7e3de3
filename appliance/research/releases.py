"""``appliance datasets release``: a signed, versioned, resumable de-identified dataset release.

A release's instances are chosen once, when its version is created, and kept as items in the
database; each item is de-identified, checked by the PHI gate, and uploaded under its SHA-256
(skipped when the workspace has it already), then marked sent. When none is left pending the
manifest is made, signed with the appliance's export key and kept, then published last, and the
release is audited (110106 Export, with the manifest's digest). A run cut at any point is resumed
by the same command: the same version, nothing uploaded twice, nothing missing.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import delete, func, insert, update
from sqlmodel import select

from anonymizer.batch import default_workers, deidentify_stream
from anonymizer.engine import Deidentifier, Outcome
from anonymizer.profile import BASIC_PROFILE_CODE, CLEAN_PIXEL_DATA_CODE, Profile, named_profile
from anonymizer.release.manifest import Policy, ReleaseFile, ReleaseManifest, check_name
from anonymizer.release.stores import sha256_hex
from anonymizer.release.targets import ReleaseTarget
from anonymizer.table import load_table
from appliance.context import Appliance, load_or_create_secret
from appliance.db.tables import (
    DatasetRelease,
    Instance,
    ItemState,
    ReleaseItem,
    ReleaseState,
    Series,
    Workspace,
)
from appliance.errors import ConfigError, NotFound
from appliance.research.selection import ReleaseCriteria, select_instances
from appliance.research.workspaces import get_workspace, target_of
from appliance.security.keys import WrappedKey
from appliance.security.pseudonym_map import PseudonymMap, pseudonymisation_secret
from audit.events import Action, AuditEvent, EventID, Participant, ParticipantObject
from audit.events import Outcome as AuditOutcome

EXPORT_KEY_NAME = "export-signing-key"
_PAGE = 256  # pending items read from the database at a time
_UPLOADS = 8  # concurrent uploads
_SAVE_EVERY = 2.0  # seconds between commits of the items done


def _reached(app: Appliance, workspace: Workspace) -> ReleaseTarget:
    target = target_of(app, workspace)
    target.check()
    return target


def export_signing_key(app: Appliance) -> Ed25519PrivateKey:
    """The appliance's own key for releases (not the audit key), KEK-wrapped in the database."""
    return Ed25519PrivateKey.from_private_bytes(
        load_or_create_secret(app.engine, app.keyring, EXPORT_KEY_NAME)
    )


def export_public_pem(app: Appliance) -> str:
    public = export_signing_key(app).public_key()
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


@dataclass(frozen=True)
class _Pending:
    """An item still to release: where its stored object is, and what kind of object it is."""

    item_id: int
    object_id: str
    key: WrappedKey
    sop_class: str
    modality: str


@dataclass(frozen=True)
class _Done:
    """What became of one item, for its row (saved in batches by one bulk UPDATE: an ORM object
    per item, loaded and changed, cost more of the uploading process than the upload's own work)."""

    id: int
    state: ItemState
    path: str | None = None
    sha256: str | None = None
    size: int | None = None
    modality: str | None = None
    sop_class: str | None = None
    reason: str | None = None


@dataclass
class ReleaseSummary:
    name: str
    version: int
    instances: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    excluded_held_out: int = 0
    uploaded: int = 0  # files sent by this run
    present: int = 0  # files the workspace had already (an earlier version, or an interrupted run)
    resumed: bool = False
    manifest: str = ""
    manifest_sha256: str = ""


def _component(value: str) -> str:
    return value if value and all(c.isalnum() or c in "._-" for c in value) else "unknown"


def _policy(app: Appliance, profile: Profile) -> Policy:
    table_path = app.settings.path(app.settings.deidentify.profile_table)
    table_sha = hashlib.sha256(table_path.read_bytes()).hexdigest()
    settings = profile.model_dump(mode="json")
    table = f"PS3.15 Table E.1-1 ({table_path.name}, sha256:{table_sha})"
    fingerprint = sha256_hex(f"{sorted(settings.items())}|{table_sha}".encode())
    codes = [BASIC_PROFILE_CODE, *(option.code for option in profile.options)]
    if profile.redact_burned_in_text:
        codes.append(CLEAN_PIXEL_DATA_CODE)
    methods = [{"code": code, "scheme": "DCM", "meaning": meaning} for code, meaning in codes]
    return Policy(profile.name, [o.value for o in profile.options], settings, table, fingerprint, methods)


class Releaser:
    """Makes (or resumes) one version of a dataset."""

    def __init__(self, app: Appliance, actor: str, workers: int = 0) -> None:
        self.app = app
        self.actor = actor
        self.workers = workers or default_workers()

    # -- the version -------------------------------------------------------------------------
    def release(self, name: str, workspace_name: str, criteria: ReleaseCriteria) -> ReleaseSummary:
        """The workspace is reached (its client made, then checked) in a thread while the version's
        instances are chosen and the first are de-identified; the first upload waits for it. A
        workspace that cannot be reached leaves no new version behind, as if checked first."""
        check_name(name)
        workspace = get_workspace(self.app, workspace_name)
        profile = named_profile(criteria.profile, self.app.settings.deidentify.profiles)
        with ThreadPoolExecutor(1, thread_name_prefix="release-workspace") as opening:
            reaching = opening.submit(_reached, self.app, workspace)
            row, resumed = self.prepare(name, workspace_name, criteria, profile)
            summary = ReleaseSummary(
                name, row.version, excluded_held_out=row.excluded_held_out, resumed=resumed
            )
            try:
                if row.state == ReleaseState.BUILDING:
                    self._send(row, reaching, profile, summary)
                    row = self._seal(row, profile)
                target = reaching.result()
            except BaseException:
                if not resumed and reaching.done() and reaching.exception() is not None:
                    self._discard(row)  # nothing was sent: the next run makes this version afresh
                raise
        if row.state == ReleaseState.SEALED:
            row = self._publish(row, target)
        return self._summarised(row, summary)

    def _discard(self, row: DatasetRelease) -> None:
        with self.app.session() as session:
            session.execute(delete(ReleaseItem).where(ReleaseItem.release_pk == row.id))  # type: ignore[arg-type]
            session.execute(delete(DatasetRelease).where(DatasetRelease.id == row.id))  # type: ignore[arg-type]
            session.commit()

    def prepare(
        self, name: str, workspace: str, criteria: ReleaseCriteria, profile: Profile
    ) -> tuple[DatasetRelease, bool]:
        """The unfinished version these criteria resume, or a new one with its instances chosen."""
        with self.app.session() as session:
            latest = session.exec(
                select(DatasetRelease)
                .where(DatasetRelease.name == name)
                .order_by(DatasetRelease.version.desc())  # type: ignore[attr-defined]
            ).first()
        if latest is not None and latest.state != ReleaseState.COMPLETE:
            if latest.criteria != criteria.as_dict() or latest.workspace != workspace:
                raise ConfigError(
                    f"{name} v{latest.version} is unfinished and was started with other criteria or another "
                    f"workspace ({latest.workspace}, {latest.criteria}): run that command again to finish it"
                )
            return latest, True
        selection = select_instances(self.app, criteria)
        if selection.held_out_named:
            self._refuse_held_out(name, selection.held_out_named)
        if not selection.instance_pks:
            raise ConfigError(
                f"no stored instance matches these criteria "
                f"({selection.excluded_studies} held-out studies left out)"
            )
        with self.app.session() as session:
            row = DatasetRelease(
                name=name,
                version=(latest.version + 1) if latest else 1,
                parent=latest.version if latest else None,
                workspace=workspace,
                criteria=criteria.as_dict(),
                profile=profile.name,
                excluded_held_out=selection.excluded_studies,
            )
            session.add(row)
            session.flush()
            session.execute(
                insert(ReleaseItem),
                [
                    {"release_pk": row.id, "instance_pk": pk, "state": ItemState.PENDING}
                    for pk in selection.instance_pks
                ],
            )
            session.commit()
            session.refresh(row)
        return row, False

    def _audit_export(
        self, outcome: AuditOutcome, objects: tuple[ParticipantObject, ...], description: str, to: str = ""
    ) -> None:
        """A release (or its refusal) as an Export event (110106), on disk before this returns."""
        participants = (Participant(self.actor, is_requestor=True),)
        if to:
            participants += (Participant(to, role="Destination Media"),)
        self.app.audit.emit(
            AuditEvent(
                event_id=EventID.EXPORT,
                action=Action.READ,
                outcome=outcome,
                type_code="Dataset Release",
                participants=participants,
                objects=objects,
                description=description,
            )
        )
        self.app.audit.flush()

    def _refuse_held_out(self, name: str, studies: list[str]) -> None:
        self._audit_export(
            AuditOutcome.SERIOUS_FAILURE,
            tuple(ParticipantObject("study", uid) for uid in studies),
            f"release of {name} refused: {len(studies)} named studies are held out",
        )
        raise ConfigError(
            f"study {studies[0]} is held out (kept for validating models here) and never leaves: "
            "leave it out of --study, or remove it from the held-out set with `appliance holdout remove`"
        )

    # -- de-identify and upload ------------------------------------------------------------------
    def _pending(self, release_pk: int) -> Iterator[_Pending]:
        """Every pending item of the release, read a page at a time."""
        last = 0
        while True:
            with self.app.session() as session:
                rows = session.exec(
                    select(
                        ReleaseItem.id,
                        Instance.object_id,
                        Instance.kek_id,
                        Instance.wrapped_key,
                        Instance.sop_class_uid,
                        Series.modality,
                    )  # fmt: skip
                    .join(Instance, Instance.id == ReleaseItem.instance_pk)
                    .join(Series, Series.id == Instance.series_pk)
                    .where(ReleaseItem.release_pk == release_pk, ReleaseItem.state == ItemState.PENDING)
                    .where(ReleaseItem.id > last)
                    .order_by(ReleaseItem.id)
                    .limit(_PAGE)
                ).all()
            if not rows:
                return
            for item_id, object_id, kek_id, wrapped, sop_class, modality in rows:
                yield _Pending(item_id, object_id, WrappedKey(kek_id, wrapped), sop_class, modality)
            last = rows[-1][0]

    def _send(
        self, row: DatasetRelease, target: Future[ReleaseTarget], profile: Profile, summary: ReleaseSummary
    ) -> None:
        table = load_table(self.app.settings.path(self.app.settings.deidentify.profile_table))
        deidentifier = Deidentifier(pseudonymisation_secret(self.app), profile, table)
        pseudonyms = PseudonymMap(self.app)
        store = self.app.store

        def load(pending: _Pending) -> bytes:  # in the de-identifying processes, where they fork
            return store.get(pending.object_id, pending.key)

        done: list[_Done] = []
        saved = time.monotonic()
        try:
            with ThreadPoolExecutor(_UPLOADS, thread_name_prefix="release-upload") as uploads:
                running: dict[Future[bool], _Done] = {}
                for pending, outcome in deidentify_stream(
                    self._pending(row.id), load, deidentifier, self.workers
                ):
                    item = self._item(pending.item_id, outcome, pending.sop_class, pending.modality)
                    if outcome.patient is not None:
                        pseudonyms.record(outcome.patient)
                    if outcome.encoded is None:
                        done.append(item)
                        continue
                    running[uploads.submit(self._upload, target, item, outcome)] = item
                    while len(running) >= 2 * _UPLOADS:
                        done += self._collect(running, summary)
                    if time.monotonic() - saved > _SAVE_EVERY:
                        pseudonyms.save()  # before the items: a pseudonym released is one the map holds
                        self._save(done)
                        done, saved = [], time.monotonic()
                while running:
                    done += self._collect(running, summary)
        finally:  # what is done stays done, also when an upload failed: the rerun skips it
            pseudonyms.save()
            self._save(done)

    @staticmethod
    def _item(item_id: int, outcome: Outcome, sop_class: str, modality: str) -> _Done:
        if outcome.encoded is None:
            reason = outcome.report.quarantined or outcome.report.failed or "not released"
            return _Done(item_id, ItemState.QUARANTINED, reason=reason[:512])
        assert outcome.patient is not None
        path = "/".join(
            _component(part)
            for part in (
                outcome.patient.pseudonym,
                outcome.study_uid,
                outcome.series_uid,
                outcome.report.sop_instance_uid,
            )
        )
        return _Done(
            item_id, ItemState.SENT, path=path + ".dcm", sha256=outcome.sha256,
            size=len(outcome.encoded), modality=modality, sop_class=sop_class,
        )  # fmt: skip

    @staticmethod
    def _upload(reaching: Future[ReleaseTarget], item: _Done, outcome: Outcome) -> bool:
        assert outcome.encoded is not None and item.sha256 and item.path
        target = reaching.result()  # the workspace, once reached (its failure raises here)
        entry = ReleaseFile(
            item.path, item.sha256, len(outcome.encoded), item.modality or "", item.sop_class or ""
        )
        uid = outcome.report.sop_instance_uid
        if target.has(entry, uid):
            return False
        target.put(entry, uid, outcome.encoded)
        return True

    @staticmethod
    def _collect(running: dict[Future[bool], _Done], summary: ReleaseSummary) -> list[_Done]:
        """The items whose uploads ended (at least one); an upload that failed raises here."""
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        done = []
        for future in finished:
            item = running.pop(future)
            if future.result():  # an upload that failed raises here: the release stops, resumable
                summary.uploaded += 1
            else:
                summary.present += 1
            done.append(item)
        return done

    def _save(self, items: list[_Done]) -> None:
        if not items:
            return
        with self.app.session() as session:
            session.execute(update(ReleaseItem), [asdict(item) for item in items])
            session.commit()

    # -- seal, publish, audit ------------------------------------------------------------------
    def _items(self, release_pk: int) -> list[ReleaseItem]:
        with self.app.session() as session:
            return list(
                session.exec(
                    select(ReleaseItem).where(ReleaseItem.release_pk == release_pk).order_by(ReleaseItem.path)
                ).all()  # type: ignore[arg-type]
            )

    def _seal(self, row: DatasetRelease, profile: Profile) -> DatasetRelease:
        items = self._items(row.id)  # type: ignore[arg-type]
        if any(item.state == ItemState.PENDING for item in items):
            raise ConfigError(
                f"{row.name} v{row.version} still has pending instances: run the same command again"
            )
        files = tuple(
            ReleaseFile(i.path or "", i.sha256 or "", i.size or 0, i.modality or "", i.sop_class or "")
            for i in items
            if i.state == ItemState.SENT
        )
        paths = [f.path.split("/") for f in files]
        quarantined = Counter(i.reason or "" for i in items if i.state == ItemState.QUARANTINED)
        counts = {
            "patients": len({p[0] for p in paths}),
            "studies": len({tuple(p[:2]) for p in paths}),
            "series": len({tuple(p[:3]) for p in paths}),
            "instances": len(files),
            "quarantined": dict(sorted(quarantined.items())),
            "held_out_excluded_studies": row.excluded_held_out,
        }
        manifest = ReleaseManifest(
            name=row.name,
            version=row.version,
            parent=row.parent,
            created=row.created_at.replace(tzinfo=row.created_at.tzinfo or UTC).isoformat(timespec="seconds"),
            appliance=f"{self.app.settings.audit.origin} ({self.app.settings.dicom.ae_title})",
            policy=_policy(self.app, profile),
            counts=counts,
            audit_checkpoint=self.app.audit.checkpoint(),
            files=files,
        )
        envelope = manifest.sign(export_signing_key(self.app))
        with self.app.session() as session:
            stored = session.get(DatasetRelease, row.id)
            assert stored is not None
            stored.envelope, stored.manifest_digest = envelope, sha256_hex(envelope)
            stored.state = ReleaseState.SEALED
            session.commit()
            session.refresh(stored)
        return stored

    def _publish(self, row: DatasetRelease, target: ReleaseTarget) -> DatasetRelease:
        assert row.envelope is not None
        url = target.publish(row.name, row.version, row.envelope)
        with self.app.session() as session:
            instances = session.exec(
                select(func.count())
                .select_from(ReleaseItem)
                .where(ReleaseItem.release_pk == row.id, ReleaseItem.state == ItemState.SENT)
            ).one()
        detail = {"manifest_sha256": row.manifest_digest, "manifest": url, "instances": instances}
        self._audit_export(
            AuditOutcome.SUCCESS,
            (ParticipantObject("dataset", f"{row.name}/v{row.version}", detail),),
            f"dataset {row.name} v{row.version} released to {row.workspace}",
            to=target.url,
        )
        with self.app.session() as session:
            stored = session.get(DatasetRelease, row.id)
            assert stored is not None
            stored.state, stored.manifest_url = ReleaseState.COMPLETE, url
            session.commit()
            session.refresh(stored)
        return stored

    def _summarised(self, row: DatasetRelease, summary: ReleaseSummary) -> ReleaseSummary:
        items = self._items(row.id)  # type: ignore[arg-type]
        summary.instances = sum(1 for i in items if i.state == ItemState.SENT)
        summary.quarantined = dict(Counter(i.reason or "" for i in items if i.state == ItemState.QUARANTINED))
        summary.manifest, summary.manifest_sha256 = row.manifest_url or "", row.manifest_digest or ""
        return summary


def list_releases(app: Appliance, name: str | None = None) -> list[DatasetRelease]:
    with app.session() as session:
        query = select(DatasetRelease).order_by(DatasetRelease.name, DatasetRelease.version)
        if name:
            query = query.where(DatasetRelease.name == name)
        return list(session.exec(query).all())


def released_series(app: Appliance, name: str) -> tuple[int, list[str]]:
    """The newest complete version of dataset ``name`` and the image series (not SEG or SR) it
    released, in the order stored; NotFound when no version of it is complete."""
    complete = [row for row in list_releases(app, name) if row.state == ReleaseState.COMPLETE]
    if not complete:
        raise NotFound(f"no complete release of a dataset {name} (see `appliance datasets list`)")
    latest = complete[-1]
    with app.session() as session:
        uids = session.exec(
            select(Series.series_uid)
            .join(Instance, Instance.series_pk == Series.id)
            .join(ReleaseItem, ReleaseItem.instance_pk == Instance.id)
            .where(ReleaseItem.release_pk == latest.id, ReleaseItem.state == ItemState.SENT)
            .where(Series.modality.not_in(("SEG", "SR")))  # type: ignore[union-attr]
            .group_by(Series.id, Series.series_uid)
            .order_by(Series.id)
        ).all()
    return latest.version, list(uids)
