"""The typed payload of each kind of job: what the stage that runs it needs, stored as JSON."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from appliance.db.tables import JobKind


class JobPayload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: ClassVar[JobKind]


class SeriesComplete(JobPayload):
    """A series quiet long enough to be complete: the inference runner's work."""

    kind: ClassVar[JobKind] = JobKind.SERIES_COMPLETE
    series_pk: int
    series_uid: str
    study_uid: str
    called_ae: str
    instance_count: int


class SendInstances(JobPayload):
    """Stored instances to C-STORE to one destination: the send worker's work."""

    kind: ClassVar[JobKind] = JobKind.SEND
    destination: str
    instances: list[int]
