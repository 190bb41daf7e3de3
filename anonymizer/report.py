"""What de-identification did to one object: attribute names and counts, never a value."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Report:
    source: str = ""  # where the object came from (the caller's name for it: a path or an index)
    sop_instance_uid: str = ""  # the new (pseudonymous) UID
    removed: set[str] = field(default_factory=set)
    emptied: set[str] = field(default_factory=set)
    replaced: set[str] = field(default_factory=set)
    remapped_uids: set[str] = field(default_factory=set)
    shifted_dates: set[str] = field(default_factory=set)
    scrubbed: set[str] = field(default_factory=set)
    scrubbed_spans: int = 0
    private_removed: int = 0
    redacted_boxes: int = 0
    quarantined: str | None = None  # why the object was held back
    failed: str | None = None  # why the file could not be read or de-identified
    skipped: bool = False  # not a DICOM file

    def as_dict(self) -> dict:
        data = asdict(self)
        return {k: sorted(v) if isinstance(v, set) else v for k, v in data.items()}
