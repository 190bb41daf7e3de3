"""Break-glass: a person outside a study's scope opens it, giving a reason, for a limited time.

The grant raises a Security Alert audit event (110113) at once, which the ATNA forwarder also sends
to the site's syslog, and stays in the auditors' review queue until an auditor marks it reviewed
with a comment. The reason's free text is stored encrypted (it may name the patient) and shown
only in that queue, never in the event.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlmodel import select

from appliance.context import Appliance
from appliance.db.tables import BreakGlass, Study, UserAccount, as_utc, utcnow
from appliance.errors import AccessRefused, NotFound
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject

REASON_CODES = ("emergency-care", "patient-safety", "clinical-consult", "other")
_REASON_COLUMN = "break_glass.reason_text"
_COMMENT_COLUMN = "break_glass.review_comment"


class GrantView(BaseModel):
    """A grant as the auditors' queue shows it."""

    id: int
    username: str
    study_uid: str
    reason_code: str
    reason_text: str
    granted_at: datetime
    expires_at: datetime
    reviewed_by: str | None
    review_comment: str | None


def grant(
    app: Appliance, user: UserAccount, address: str, study_uid: str, reason_code: str, reason_text: str
) -> BreakGlass:
    if reason_code not in REASON_CODES:
        raise AccessRefused(f"reason_code must be one of {', '.join(REASON_CODES)}", 400)
    if len(reason_text.strip()) < 10:
        raise AccessRefused("reason_text must say why, in at least 10 characters", 400)
    minutes = app.settings.http.break_glass_minutes
    with app.session() as session:
        if session.exec(select(Study).where(Study.study_uid == study_uid)).first() is None:
            raise NotFound("no such study")
        row = BreakGlass(
            user_pk=user.id,
            study_uid=study_uid,
            reason_code=reason_code,
            reason_text_enc=app.fields.encrypt(_REASON_COLUMN, reason_text),
            expires_at=utcnow() + timedelta(minutes=minutes),
        )
        session.add(row)
        session.commit()
    app.audit.emit(
        AuditEvent(
            event_id=EventID.SECURITY_ALERT,
            action=Action.EXECUTE,
            outcome=Outcome.SUCCESS,
            type_code="Emergency Override Started",
            participants=(Participant(user.username, host=address, is_requestor=True, role=user.role.value),),
            # the reason's text stays in the (encrypted) grant, read in the review queue: this event
            # also goes to the site's syslog, and the text may name the patient
            objects=(ParticipantObject("study", study_uid, {"reason_code": reason_code, "grant": row.id}),),
            description=f"break-glass access to a study for {minutes} minutes ({reason_code})",
        )
    )
    app.audit.flush()  # durable now, and so in the syslog forwarder's next batch
    return row


def granted_studies(app: Appliance, user: UserAccount) -> set[str]:
    """The studies ``user`` holds a live break-glass grant for."""
    now = utcnow()
    with app.session() as session:
        rows = session.exec(select(BreakGlass).where(BreakGlass.user_pk == user.id)).all()
    return {row.study_uid for row in rows if as_utc(row.expires_at) > now}


def _view(app: Appliance, row: BreakGlass, username: str) -> GrantView:
    return GrantView(
        id=row.id or 0,
        username=username,
        study_uid=row.study_uid,
        reason_code=row.reason_code,
        reason_text=app.fields.decrypt(_REASON_COLUMN, row.reason_text_enc),
        granted_at=row.granted_at,
        expires_at=row.expires_at,
        reviewed_by=row.reviewed_by,
        review_comment=(
            app.fields.decrypt(_COMMENT_COLUMN, row.review_comment_enc) if row.review_comment_enc else None
        ),
    )


def review_queue(app: Appliance, include_reviewed: bool = False) -> list[GrantView]:
    with app.session() as session:
        statement = select(BreakGlass, UserAccount).where(BreakGlass.user_pk == UserAccount.id)
        if not include_reviewed:
            statement = statement.where(BreakGlass.reviewed_at.is_(None))  # type: ignore[union-attr]
        rows = session.exec(statement.order_by(BreakGlass.id)).all()
    return [_view(app, row, user.username) for row, user in rows]


def review(app: Appliance, auditor: str, address: str, grant_id: int, comment: str) -> GrantView:
    if not comment.strip():
        raise AccessRefused("a review needs a comment", 400)
    with app.session() as session:
        row = session.get(BreakGlass, grant_id)
        if row is None:
            raise NotFound(f"no break-glass grant {grant_id}")
        if row.reviewed_at is not None:
            raise AccessRefused(f"grant {grant_id} was reviewed already by {row.reviewed_by}", 409)
        row.reviewed_by, row.reviewed_at = auditor, utcnow()
        row.review_comment_enc = app.fields.encrypt(_COMMENT_COLUMN, comment)
        session.add(row)
        session.commit()
        user = session.get(UserAccount, row.user_pk)
    app.audit.emit(
        AuditEvent(
            event_id=EventID.SECURITY_ALERT,
            action=Action.UPDATE,
            outcome=Outcome.SUCCESS,
            type_code="Emergency Override Reviewed",
            participants=(Participant(auditor, host=address, is_requestor=True, role="auditor"),),
            objects=(ParticipantObject("break-glass", str(grant_id), {"comment": comment}),),
            description=f"break-glass grant {grant_id} reviewed",
        )
    )
    return _view(app, row, user.username if user else "?")
