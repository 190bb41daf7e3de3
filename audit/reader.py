"""Reading the log: decrypt entries (needs the audit key) and filter them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audit.errors import AuditIntegrityError
from audit.log import ENTRIES, NONCE_BYTES, Record, entry_aad, read_records


def decrypt(record: Record, aead: AESGCM) -> dict[str, Any]:
    try:
        plain = aead.decrypt(
            record.sealed[:NONCE_BYTES], record.sealed[NONCE_BYTES:], entry_aad(record.index)
        )
    except InvalidTag as exc:
        raise AuditIntegrityError(f"entry {record.index}: does not decrypt (altered or moved)") from exc
    return {"index": record.index, **json.loads(plain)}


def read_entries(directory: Path, key: bytes) -> Iterator[dict[str, Any]]:
    aead = AESGCM(key)
    for record in read_records(directory / ENTRIES):
        yield decrypt(record, aead)


@dataclass(frozen=True)
class Filter:
    since: datetime | None = None
    until: datetime | None = None
    who: str | None = None  # a user or AE title among the active participants
    patient_id: str | None = None
    study_uid: str | None = None
    event_id: str | None = None  # DCM code, e.g. 110104
    outcome: int | None = None

    def matches(self, entry: dict[str, Any]) -> bool:
        at = datetime.fromisoformat(entry["at"])
        objects = {(o["kind"], o["id"]) for o in entry.get("objects", [])}
        people = {p["user_id"] for p in entry.get("participants", [])}
        return (
            (self.since is None or at >= self.since)
            and (self.until is None or at <= self.until)
            and (self.who is None or self.who in people)
            and (self.patient_id is None or ("patient", self.patient_id) in objects)
            and (self.study_uid is None or ("study", self.study_uid) in objects)
            and (self.event_id is None or entry["event_id"] == self.event_id)
            and (self.outcome is None or entry["outcome"] == self.outcome)
        )
