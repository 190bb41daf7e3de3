"""Access tokens: a random bearer token per sign-in (also the browser's session cookie), short-lived
and revocable, stored only as its SHA-256; with it a CSRF token that a cookie-borne request which
changes anything must echo in a header (a bearer token is never sent by a browser on its own).

A page session slides: a person's own request with the cookie pushes its end to a token lifetime
from now (at most ``http.session_hours`` after sign-in), so it ends only after that long idle; a
bearer token given to a program keeps its fixed lifetime.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, select

from appliance.context import Appliance
from appliance.db.tables import AccessToken, UserAccount, as_utc, utcnow


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    csrf_token: str
    expires_in: int  # seconds


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(app: Appliance, user: UserAccount, address: str) -> IssuedToken:
    lifetime = app.settings.http.token_seconds
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with app.session() as session:
        session.add(
            AccessToken(
                token_hash=_digest(token),
                user_pk=user.id,
                csrf_hash=_digest(csrf),
                address=address[:64],
                expires_at=utcnow() + timedelta(seconds=lifetime),
            )
        )
        session.commit()
    return IssuedToken(token, csrf, lifetime)


@dataclass(frozen=True)
class Bearer:
    """Who a live token belongs to, and the CSRF digest that goes with it."""

    user: UserAccount
    csrf_hash: str

    def csrf_matches(self, csrf: str | None) -> bool:
        return csrf is not None and hmac.compare_digest(_digest(csrf), self.csrf_hash)


def resolve(app: Appliance, token: str, slide: bool = False) -> Bearer | None:
    """The token's account, if the token is known, unexpired, unrevoked and the account enabled;
    ``slide``: a person's activity, which extends the session (written once per half lifetime)."""
    with app.session() as session:
        row = session.get(AccessToken, _digest(token))
        now = utcnow()
        if row is None or row.revoked_at is not None or as_utc(row.expires_at) <= now:
            return None
        user = session.get(UserAccount, row.user_pk)
        if user is None or user.disabled:
            return None
        lifetime = timedelta(seconds=app.settings.http.token_seconds)
        if slide and as_utc(row.expires_at) - now < lifetime / 2:
            longest = as_utc(row.created_at) + timedelta(hours=app.settings.http.session_hours)
            row.expires_at = min(now + lifetime, longest)
            session.add(row)
            session.commit()
        return Bearer(user, row.csrf_hash)


def revoke(app: Appliance, token: str) -> None:
    with app.session() as session:
        row = session.get(AccessToken, _digest(token))
        if row is not None and row.revoked_at is None:
            row.revoked_at = utcnow()
            session.add(row)
            session.commit()


def revoke_all(session: Session, user: UserAccount) -> None:
    """Every live token of ``user`` (disabled or re-enrolled)."""
    for row in session.exec(
        select(AccessToken).where(AccessToken.user_pk == user.id, AccessToken.revoked_at.is_(None))  # type: ignore[union-attr]
    ):
        row.revoked_at = utcnow()
        session.add(row)
    session.commit()
