"""The audit sink interface and its interim JSON-lines implementation."""

from __future__ import annotations

import json
import threading

from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject
from audit.sink import JsonLinesSink, MemorySink


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


def test_json_lines_sink_keeps_every_event_from_concurrent_writers(tmp_path):
    sink = JsonLinesSink(tmp_path / "logs" / "audit.jsonl")
    threads = [
        threading.Thread(target=lambda k=k: [sink.emit(event(k * 100 + i)) for i in range(100)])
        for k in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = (tmp_path / "logs" / "audit.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["objects"][0]["id"] for line in lines) == sorted(
        f"1.2.3.{n}" for n in range(400)
    )
    assert oct((tmp_path / "logs" / "audit.jsonl").stat().st_mode & 0o777) == "0o600"


def test_memory_sink():
    sink = MemorySink()
    sink.emit(event(1))
    assert sink.events[0].description == "instances=1"
