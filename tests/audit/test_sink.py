"""The audit sink interface and its interim JSON-lines implementation."""

from __future__ import annotations

from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject
from audit.sink import MemorySink


def event(n: int) -> AuditEvent:
    return AuditEvent(
        event_id=EventID.INSTANCES_TRANSFERRED,
        action=Action.CREATE,
        outcome=Outcome.SUCCESS,
        participants=(Participant("SCU", "127.0.0.1", is_requestor=True),),
        objects=(ParticipantObject("study", f"1.2.3.{n}"),),
        description=f"instances={n}",
    )


def test_events_serialise_with_dicom_codes():
    record = event(3).to_dict()
    assert record["event_id"] == "110104" and record["event"] == "DICOM Instances Transferred"
    assert record["objects"] == [{"kind": "study", "id": "1.2.3.3", "detail": {}}]


def test_memory_sink():
    sink = MemorySink()
    sink.emit(event(1))
    assert sink.events[0].description == "instances=1"
