"""Reading an appliance home from a test: decrypted instances, plaintext scans, audit events."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from appliance.context import open_appliance
from appliance.db.tables import Instance
from appliance.security.keys import WrappedKey
from audit.reader import read_entries
from dicom_gateway.received import split_part10
from testbed.synthetic import FakePatient


def stored_files(home: Path) -> dict[str, bytes]:
    """SOP Instance UID -> the Part 10 file the appliance decrypts from its store."""
    app = open_appliance(home)
    try:
        with app.session() as session:
            rows = session.exec(select(Instance)).all()
        return {
            row.sop_instance_uid: app.store.get(row.object_id, WrappedKey(row.kek_id, row.wrapped_key))
            for row in rows
        }
    finally:
        app.engine.dispose()


def stored_datasets(home: Path) -> dict[str, bytes]:
    """SOP Instance UID -> the dataset bytes the appliance decrypts from its store."""
    return {uid: split_part10(data)[1] for uid, data in stored_files(home).items()}


def dataset_bytes_of_file(path: Path) -> bytes:
    return split_part10(path.read_bytes())[1]


def phi_needles(patient: FakePatient) -> list[bytes]:
    family, given, middle = patient.name.split("^")
    return [v.encode().lower() for v in (family, given, patient.patient_id, patient.birth_date, "ACC99117")]


def plaintext_hits(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            hits.extend(f"{path.relative_to(root)}: {n.decode()}" for n in needles if n in data)
    return hits


def audit_events(home: Path) -> list[dict]:
    """Every audit entry, decrypted (the reading process writes nothing to the log)."""
    app = open_appliance(home)
    try:
        return list(read_entries(app.settings.path(app.settings.audit.directory), app.audit_key))
    finally:
        app.engine.dispose()


def store_files(home: Path) -> list[Path]:
    return [p for p in (home / "store" / "objects").rglob("*") if p.is_file()]
