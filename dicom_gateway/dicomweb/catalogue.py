"""What the DICOMweb routes need from the application: records to match, instances to read, a
place to store.

The application decides what the caller may see and records each access; the routes only speak
the protocol. Records are DICOM JSON objects (tag -> {"vr", "Value"}), one per study, series or
instance; a retrieval is a list of instances whose bytes are read one at a time, as they are sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from dicom_gateway.dicomweb.query import Query
from dicom_gateway.dicomweb.stow import StowOutcome


@dataclass(frozen=True)
class StoredInstance:
    """An instance to send: its transfer syntax, and how to read its Part 10 bytes when its turn comes."""

    sop_instance_uid: str
    transfer_syntax_uid: str
    size: int  # of the Part 10 bytes ``read`` gives
    read: Callable[[], bytes]
    read_header: Callable[[], bytes]  # the Part 10 bytes up to the pixel data at least (for metadata)


class Catalogue(Protocol):
    def studies(self, query: Query) -> list[dict]:
        """Candidate study records (the routes match them against ``query``); the query is recorded."""

    def series(self, study_uid: str | None, query: Query) -> list[dict]:
        """Candidate series records, of one study or of all."""

    def instances(self, study_uid: str | None, series_uid: str | None, query: Query) -> list[dict]:
        """Candidate instance records, of one series, one study or all."""

    def retrieve(
        self, study_uid: str, series_uid: str | None = None, instance_uid: str | None = None
    ) -> list[StoredInstance]:
        """The instances of a study, a series or one instance; raises DicomwebRefused (404, 403)."""

    def store(self, parts: list[bytes], study_uid: str | None) -> StowOutcome:
        """Store each DICOM file as C-STORE would (only those of ``study_uid`` if given)."""
