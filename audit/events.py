"""Audit events, named after DICOM PS3.15 A.5 (Audit Trail Message Format Profile).

A leaf module: every library may import it to describe what happened. The sink that records
events is handed in by the caller (see :mod:`audit.sink`), never imported from here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class EventID(enum.Enum):
    """DCM event IDs (code value, meaning) from PS3.16 CID 400."""

    APPLICATION_ACTIVITY = ("110100", "Application Activity")
    AUDIT_LOG_USED = ("110101", "Audit Log Used")
    INSTANCES_ACCESSED = ("110103", "DICOM Instances Accessed")
    INSTANCES_TRANSFERRED = ("110104", "DICOM Instances Transferred")
    EXPORT = ("110106", "Export")
    IMPORT = ("110107", "Import")
    NETWORK_ENTRY = ("110108", "Network Entry")
    PATIENT_RECORD = ("110110", "Patient Record")
    QUERY = ("110112", "Query")
    SECURITY_ALERT = ("110113", "Security Alert")
    USER_AUTHENTICATION = ("110114", "User Authentication")

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def meaning(self) -> str:
        return self.value[1]


class Action(enum.StrEnum):
    """Event Action Code (PS3.15 A.5.1): Create, Read, Update, Delete, Execute."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class Outcome(enum.IntEnum):
    """Event Outcome Indicator (PS3.15 A.5.1)."""

    SUCCESS = 0
    MINOR_FAILURE = 4
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12


@dataclass(frozen=True)
class Participant:
    """An active participant: a user, process or AE, and where it acted from."""

    user_id: str
    host: str | None = None
    is_requestor: bool = False
    role: str | None = None


@dataclass(frozen=True)
class ParticipantObject:
    """What the event was about: a study UID, a patient (ID), a security resource, a config."""

    kind: str
    identifier: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEvent:
    """One auditable occurrence. Mixed outcomes are separate events (PS3.15 A.5.2)."""

    event_id: EventID
    action: Action
    outcome: Outcome
    type_code: str | None = None
    participants: tuple[Participant, ...] = ()
    objects: tuple[ParticipantObject, ...] = ()
    description: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "event_id": self.event_id.code,
            "event": self.event_id.meaning,
            "type": self.type_code,
            "action": self.action.value,
            "outcome": int(self.outcome),
            "description": self.description,
            "participants": [vars(p) for p in self.participants],
            "objects": [{"kind": o.kind, "id": o.identifier, "detail": o.detail} for o in self.objects],
        }
