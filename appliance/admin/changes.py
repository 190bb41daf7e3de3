"""Configuration changes (sources, destinations, accounts) as audit events, one shape for all."""

from __future__ import annotations

from appliance.context import Appliance
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject


def record_change(
    app: Appliance, actor: str, action: Action, kind: str, name: str, what: str, detail: dict | None = None
) -> None:
    """``actor`` changed the ``kind`` named ``name``: ``what`` (e.g. "added"), with ``detail``."""
    app.audit.emit(
        AuditEvent(
            event_id=EventID.APPLICATION_ACTIVITY,
            action=action,
            outcome=Outcome.SUCCESS,
            type_code="Configuration Change",
            participants=(Participant(actor, is_requestor=True),),
            objects=(ParticipantObject(kind, name, detail or {}),),
            description=f"{kind} {name} {what}",
        )
    )
