"""The audit log on 10,000 entries: every tampering case is caught and named; a clean log verifies."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import checkpoint
from audit.errors import AuditIntegrityError
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject
from audit.log import CHECKPOINTS, ENTRIES, AuditLog, read_records
from audit.reader import read_entries
from audit.verify import verify_log

ORIGIN = "test-appliance"
COUNT = 10_000
KEY = bytes(range(32))
SIGNER = Ed25519PrivateKey.generate()


def event(n: int) -> AuditEvent:
    return AuditEvent(
        event_id=EventID.INSTANCES_TRANSFERRED,
        action=Action.CREATE,
        outcome=Outcome.SUCCESS,
        participants=(Participant("SCU", "127.0.0.1", is_requestor=True),),
        objects=(ParticipantObject("patient", f"P{n % 97}"), ParticipantObject("study", f"1.2.3.{n}")),
        description=f"event {n}",
    )


def write(directory: Path, witness: Path, first: int, count: int) -> None:
    log = AuditLog(directory, KEY, SIGNER, ORIGIN, witness, checkpoint_every=1000, checkpoint_seconds=3600)
    for n in range(first, first + count):
        log.emit(event(n))
        if n % 500 == 499:
            log.flush()  # as events trickle in from a running appliance, not all in one batch
    log.close()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audit")
    write(root / "log", root / "witness.jsonl", 0, COUNT)
    return root


@pytest.fixture
def copy(pristine, tmp_path) -> Path:
    shutil.copytree(pristine, tmp_path / "c")
    return tmp_path / "c"


def verify(root: Path, held: str | None = None):
    return verify_log(root / "log", SIGNER.public_key(), ORIGIN, root / "witness.jsonl", held)


def records(root: Path) -> tuple[bytes, list]:
    path = root / "log" / ENTRIES
    return path.read_bytes(), list(read_records(path))


def span(record) -> tuple[int, int]:
    return record.offset, record.offset + struct.calcsize("<I32s") + len(record.sealed)


def notes(root: Path) -> list[Path]:
    """Checkpoints fall on group-commit batch ends, at least every 1000 entries, and at close."""
    return sorted((root / "log" / CHECKPOINTS).glob("*.note"))


def test_untouched_log_verifies_and_decrypts(copy):
    result = verify(copy)
    assert result.entries == COUNT and result.checkpoints == len(notes(copy)) >= 10
    assert result.witnessed == len((copy / "witness.jsonl").read_text().splitlines())
    assert int(notes(copy)[-1].stem) == COUNT
    entries = list(read_entries(copy / "log", KEY))
    assert [e["description"] for e in entries] == [f"event {n}" for n in range(COUNT)]


def test_flipped_byte_names_the_entry(copy):
    data, recs = records(copy)
    start, _ = span(recs[5000])
    altered = bytearray(data)
    altered[start + 60] ^= 0x01
    (copy / "log" / ENTRIES).write_bytes(bytes(altered))
    with pytest.raises(AuditIntegrityError, match="entry 5000:"):
        verify(copy)


def test_deleted_entry_is_named(copy):
    data, recs = records(copy)
    start, end = span(recs[4000])
    (copy / "log" / ENTRIES).write_bytes(data[:start] + data[end:])
    with pytest.raises(AuditIntegrityError, match="entry 4000:"):
        verify(copy)


def test_swapped_entries_are_named(copy):
    data, recs = records(copy)
    a, b = span(recs[100]), span(recs[101])
    (copy / "log" / ENTRIES).write_bytes(data[: a[0]] + data[b[0] : b[1]] + data[a[0] : a[1]] + data[b[1] :])
    with pytest.raises(AuditIntegrityError, match="entry 100:"):
        verify(copy)


def test_truncated_tail_is_caught_by_the_last_checkpoint(copy):
    data, recs = records(copy)
    (copy / "log" / ENTRIES).write_bytes(data[: recs[COUNT - 10].offset])
    with pytest.raises(AuditIntegrityError, match="signed for 10000 entries but the log holds 9990"):
        verify(copy)


def test_tail_replaced_after_rollback_is_caught_by_the_witness(copy):
    data, recs = records(copy)
    (copy / "log" / ENTRIES).write_bytes(data[: recs[5000].offset])
    for note in (copy / "log" / CHECKPOINTS).glob("*.note"):
        if int(note.stem) > 5000:
            note.unlink()
    write(copy / "log", copy / "witness.jsonl", 50_000, 5000)  # the appliance writes on, validly signed
    with pytest.raises(AuditIntegrityError, match=r"witness checkpoint \d+: root at size \d+ differs"):
        verify(copy)


def test_altered_checkpoint_is_named(copy):
    path = notes(copy)[2]
    lines = path.read_text().split("\n")
    lines[2] = "A" * 43 + "="  # another root, same signature
    path.write_text("\n".join(lines))
    with pytest.raises(AuditIntegrityError, match=f"checkpoint {path.name}: signature"):
        verify(copy)


def test_forged_checkpoint_signed_by_another_key_is_named(copy):
    forged = checkpoint.sign(checkpoint.Checkpoint(ORIGIN, COUNT, b"\x00" * 32), Ed25519PrivateKey.generate())
    (copy / "log" / CHECKPOINTS / f"{COUNT:012d}.note").write_text(forged)
    with pytest.raises(AuditIntegrityError, match="no signature by the appliance's key"):
        verify(copy)


def test_auditor_checkpoint_is_extended_and_a_foreign_one_refused(copy):
    held = notes(copy)[4].read_text()
    write(copy / "log", copy / "witness.jsonl", COUNT, 500)
    assert verify(copy, held).entries == COUNT + 500
    other = checkpoint.sign(checkpoint.Checkpoint(ORIGIN, 5000, b"\x11" * 32), SIGNER)  # never the log's
    with pytest.raises(AuditIntegrityError, match="auditor's checkpoint: the log does not extend it"):
        verify(copy, other)
