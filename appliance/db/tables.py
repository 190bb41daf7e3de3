"""SQLModel tables. Patient-identifying values are stored only encrypted (see ``phi_fields``).

Every change here needs an Alembic revision in ``migrations/versions``.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import JSON, Column, LargeBinary, UniqueConstraint, false, true
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A time read back from the database (SQLite gives it without its zone; it is UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class SeriesState(enum.StrEnum):
    RECEIVING = "receiving"
    COMPLETE = "complete"


class JobState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobKind(enum.StrEnum):
    SERIES_COMPLETE = "series_complete"
    SEND = "send"


class Patient(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    lookup: str = Field(index=True, unique=True, description="keyed HMAC of issuer and patient ID")
    name_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    patient_id_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    birth_date_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Study(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    study_uid: str = Field(index=True, unique=True, max_length=64)
    patient_pk: int = Field(foreign_key="patient.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)


class Series(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("called_ae", "series_uid"),)

    id: int | None = Field(default=None, primary_key=True)
    study_pk: int = Field(foreign_key="study.id", index=True)
    series_uid: str = Field(max_length=64, index=True)
    called_ae: str = Field(max_length=16)
    modality: str = Field(default="", max_length=16)
    state: SeriesState = Field(default=SeriesState.RECEIVING, index=True)
    instance_count: int = 0
    last_received_at: datetime = Field(default_factory=utcnow, index=True)
    completed_at: datetime | None = None


class Instance(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    sop_instance_uid: str = Field(index=True, unique=True, max_length=64)
    sop_class_uid: str = Field(max_length=64)
    transfer_syntax_uid: str = Field(max_length=64)
    series_pk: int = Field(foreign_key="series.id", index=True)
    source_ae: str = Field(max_length=16)
    size: int
    object_id: str = Field(index=True, unique=True, max_length=40)
    kek_id: str = Field(max_length=16, index=True)
    wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    received_at: datetime = Field(default_factory=utcnow)
    # SHA-256 of the dataset as encoded (after the file meta): a resend that differs is a conflict
    content_digest: str | None = Field(default=None, max_length=64)
    # False from a receipt's commit until the audit record of its transfer is durable
    receipt_audited: bool = Field(default=True, index=True, sa_column_kwargs={"server_default": true()})


class Source(SQLModel, table=True):
    """A peer allowed to send: AE title and host, and the TLS subject bound to it if any."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    ae_title: str = Field(max_length=16, index=True)
    host: str = Field(max_length=255)
    tls_subject: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow)


class Destination(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    ae_title: str = Field(max_length=16)
    host: str = Field(max_length=255)
    port: int
    tls: bool = False
    # receives the inference results (SEG, SR): never by default, so a clinical PACS added as a
    # destination does not get a demonstration model's output
    results: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    created_at: datetime = Field(default_factory=utcnow)


class Job(SQLModel, table=True):
    """Durable work between stages: a crash loses no job that was committed."""

    id: int | None = Field(default=None, primary_key=True)
    kind: JobKind = Field(index=True)
    state: JobState = Field(default=JobState.PENDING, index=True)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    attempts: int = 0
    max_attempts: int = 1
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    last_error: str | None = None
    outcome: str | None = Field(
        default=None, description="what a finished job did, e.g. results or no rule matched"
    )
    lease_owner: str | None = Field(default=None, max_length=128, description="host:pid of the claimer")
    lease_until: datetime | None = Field(default=None, index=True, description="a running job's lease end")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ModelState(enum.StrEnum):
    STAGED = "staged"
    ACTIVE = "active"
    RETIRED = "retired"


class Model(SQLModel, table=True):
    """A signed MONAI bundle imported into the home; one active version per name."""

    __table_args__ = (UniqueConstraint("name", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, index=True)
    version: str = Field(max_length=64)
    publisher: str = Field(max_length=128)
    state: ModelState = Field(default=ModelState.STAGED, index=True)
    path: str = Field(max_length=1024)
    imported_at: datetime = Field(default_factory=utcnow)
    changed_at: datetime = Field(default_factory=utcnow)
    activated_at: datetime | None = Field(default=None, description="when it last became active (rollback)")
    release: str | None = Field(
        default=None, max_length=160, description="the release it was trained on (NAME vN), from its lineage"
    )


class WrappedSecret(SQLModel, table=True):
    """A secret of the appliance (e.g. the database field key), wrapped by the KEK."""

    __tablename__ = "wrapped_secret"

    name: str = Field(primary_key=True, max_length=64)
    kek_id: str = Field(max_length=16)
    blob: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Pseudonym(SQLModel, table=True):
    """The way back from a research pseudonym to the patient, for authorised re-identification."""

    pseudonym: str = Field(primary_key=True, max_length=64)
    patient_id_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    name_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Role(enum.StrEnum):
    """What a person may do (see ``appliance.access.rules``): one role per account."""

    CLINICIAN = "clinician"
    RESEARCHER = "researcher"
    AUDITOR = "auditor"
    ADMIN = "admin"


class UserAccount(SQLModel, table=True):
    """A person's account. The TOTP secret is stored encrypted; the password only as an argon2id hash."""

    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=64)
    role: Role
    password_hash: str = Field(max_length=255)
    totp_secret_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    last_totp_step: int = 0  # a code of this time step or earlier is never accepted again
    must_change_password: bool = True
    disabled: bool = False
    failed_logins: int = 0
    locked_until: datetime | None = None
    # a clinician limited to these sources (names) and modalities; empty: no limit
    sources: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    modalities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    changed_at: datetime = Field(default_factory=utcnow)


class AccessToken(SQLModel, table=True):
    """A login's bearer token (also the browser's session cookie), stored only as its SHA-256."""

    __tablename__ = "access_token"

    token_hash: str = Field(primary_key=True, max_length=64)
    user_pk: int = Field(foreign_key="user_account.id", index=True)
    csrf_hash: str = Field(max_length=64)
    address: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)
    revoked_at: datetime | None = None


class BreakGlass(SQLModel, table=True):
    """Emergency access to a study outside a user's scope, until it expires; reviewed by an auditor."""

    __tablename__ = "break_glass"

    id: int | None = Field(default=None, primary_key=True)
    user_pk: int = Field(foreign_key="user_account.id", index=True)
    study_uid: str = Field(max_length=64, index=True)
    reason_code: str = Field(max_length=32)
    reason_text_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    granted_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    reviewed_by: str | None = Field(default=None, max_length=64)
    reviewed_at: datetime | None = None
    review_comment_enc: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class StudySummary(SQLModel, table=True):
    """A study's query attributes (DICOM JSON of its first instance's study-level header), encrypted:
    what QIDO-RS matches and answers, read once from the store rather than at every query."""

    __tablename__ = "study_summary"

    study_pk: int = Field(foreign_key="study.id", primary_key=True)
    attributes_enc: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class WorkspaceKind(enum.StrEnum):
    DIR = "dir"
    S3 = "s3"
    DICOMWEB = "dicomweb"


class Workspace(SQLModel, table=True):
    """Where dataset releases go. S3 credentials, when given from a file, are kept encrypted."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    kind: WorkspaceKind
    url: str = Field(max_length=1024)
    endpoint: str | None = Field(default=None, max_length=1024)
    region: str | None = Field(default=None, max_length=64)
    credentials_enc: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class HoldOut(SQLModel, table=True):
    """A study, or every study of a patient (by the patient's keyed lookup), kept for validating
    models here: no release ever includes it."""

    __tablename__ = "hold_out"

    id: int | None = Field(default=None, primary_key=True)
    study_uid: str | None = Field(default=None, max_length=64, index=True, unique=True)
    patient_lookup: str | None = Field(default=None, max_length=64, index=True, unique=True)
    rule: str = Field(
        max_length=128, description="how it was chosen: study, patient, or the fraction and seed"
    )
    added_by: str = Field(max_length=128)
    added_at: datetime = Field(default_factory=utcnow)


class ReleaseState(enum.StrEnum):
    BUILDING = "building"  # its instances are chosen; being de-identified and uploaded
    SEALED = "sealed"  # every file is up; the signed manifest is made and being published
    COMPLETE = "complete"


class DatasetRelease(SQLModel, table=True):
    __tablename__ = "dataset_release"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, index=True)
    version: int
    parent: int | None = None
    workspace: str = Field(max_length=64)
    state: ReleaseState = ReleaseState.BUILDING
    criteria: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    profile: str = Field(max_length=64)
    excluded_held_out: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    envelope: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    manifest_digest: str | None = Field(default=None, max_length=64)
    manifest_url: str | None = Field(default=None, max_length=2048)


class ItemState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    QUARANTINED = "quarantined"


class ReleaseItem(SQLModel, table=True):
    """One stored instance chosen for a release, and what became of it (paths are pseudonymised)."""

    __tablename__ = "release_item"
    __table_args__ = (UniqueConstraint("release_pk", "instance_pk"),)

    id: int | None = Field(default=None, primary_key=True)
    release_pk: int = Field(foreign_key="dataset_release.id", index=True)
    instance_pk: int = Field(foreign_key="instance.id")
    state: ItemState = ItemState.PENDING
    path: str | None = Field(default=None, max_length=512)
    sha256: str | None = Field(default=None, max_length=64)
    size: int | None = None
    modality: str | None = Field(default=None, max_length=16)
    sop_class: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=512, description="why it was quarantined (no PHI)")


class InferenceResult(SQLModel, table=True):
    """What a model found in a series: its SEG and SR, and the volume of each segment."""

    __tablename__ = "inference_result"

    id: int | None = Field(default=None, primary_key=True)
    job_pk: int = Field(foreign_key="job.id", index=True)
    study_uid: str = Field(max_length=64, index=True)
    series_uid: str = Field(max_length=64)
    seg_uid: str = Field(max_length=64, index=True)
    sr_uid: str = Field(max_length=64)
    model: str = Field(max_length=128)
    version: str = Field(max_length=64)
    volumes_ml: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Decision(enum.StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CORRECTED = "corrected"


class ResultAssessment(SQLModel, table=True):
    """A clinician's decision on an AI result (IHE AIRAI's assessment); the newest one counts."""

    __tablename__ = "result_assessment"

    id: int | None = Field(default=None, primary_key=True)
    result_pk: int = Field(foreign_key="inference_result.id", index=True)
    decision: Decision
    reason_code: str | None = Field(default=None, max_length=32)
    reason_text_enc: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    username: str = Field(max_length=64)
    decided_at: datetime = Field(default_factory=utcnow)
    assessment_uid: str | None = Field(default=None, max_length=64, description="the SR sent to the PACS")
    corrected_seg_uid: str | None = Field(default=None, max_length=64, description="a correction's SEG")


class ComplianceReportRow(SQLModel, table=True):
    """A signed compliance report (see appliance.compliance): its DSSE envelope and what it found."""

    __tablename__ = "compliance_report"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    since: datetime
    trigger: str = Field(max_length=80, description="schedule, cli, or web:<user>")
    failed: int = 0
    worst: str | None = Field(default=None, max_length=16, description="the worst failed finding's severity")
    fingerprint: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    envelope: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    digest: str = Field(max_length=64, description="SHA-256 of the envelope")


class RequestState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"
    RELEASED = "released"
    FAILED = "failed"


class ReleaseRequest(SQLModel, table=True):
    """A researcher's request for a release (a cohort query), which an admin approves before it runs."""

    __tablename__ = "release_request"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    workspace: str = Field(max_length=64)
    criteria: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    purpose: str = Field(max_length=1000)
    requested_by: str = Field(max_length=64)
    requested_at: datetime = Field(default_factory=utcnow)
    state: RequestState = Field(default=RequestState.PENDING, index=True)
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = None
    note: str | None = Field(default=None, max_length=512, description="why refused, or why it failed")
    version: int | None = Field(default=None, description="the version it released")


class ModelValidation(SQLModel, table=True):
    """A signed validation report (see appliance.modelops.validation): a candidate against the
    version active when it ran, on the held-out set, under the active version's protocol."""

    __tablename__ = "model_validation"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, index=True)
    version: str = Field(max_length=64)
    baseline: str = Field(max_length=64, description="the active version it was compared with")
    created_at: datetime = Field(default_factory=utcnow)
    passed: bool
    cases: int
    failed_criteria: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    envelope: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    digest: str = Field(max_length=64, description="SHA-256 of the envelope")


class ReferenceLabel(SQLModel, table=True):
    """A reference SEG of a held-out series (stored encrypted like any instance), imported with
    ``appliance holdout labels import``: what models are validated against."""

    __tablename__ = "reference_label"

    id: int | None = Field(default=None, primary_key=True)
    series_uid: str = Field(max_length=64, index=True, unique=True)
    seg_uid: str = Field(max_length=64)
    imported_by: str = Field(max_length=128)
    imported_at: datetime = Field(default_factory=utcnow)


class ShadowRun(SQLModel, table=True):
    """A candidate version running in shadow beside the active one (``appliance models shadow``):
    until ``until``, or for ``max_series`` series, or until stopped or promoted."""

    __tablename__ = "shadow_run"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, index=True)
    version: str = Field(max_length=64)
    started_by: str = Field(max_length=128)
    started_at: datetime = Field(default_factory=utcnow)
    until: datetime | None = None
    max_series: int | None = None
    ended_at: datetime | None = None


class ShadowResult(SQLModel, table=True):
    """What the shadow version did on one series beside the active one; its labels are kept only as
    these measurements (no SEG is stored, so no viewer, query or send can show an unvalidated result)."""

    __tablename__ = "shadow_result"

    id: int | None = Field(default=None, primary_key=True)
    run_pk: int = Field(foreign_key="shadow_run.id", index=True)
    job_pk: int
    series_uid: str = Field(max_length=64)
    active_version: str = Field(max_length=64)
    at: datetime = Field(default_factory=utcnow)
    agreement: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    volumes_ml: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    active_volumes_ml: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    seconds: float | None = None
    active_seconds: float | None = None
    failure: str | None = Field(default=None, max_length=500)
