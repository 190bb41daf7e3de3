"""Accounts: created by an admin with a one-time password and a TOTP enrolment, signed in with both.

Every sign-in, failed or not, is a User Authentication audit event (110114) with the name, role and
network address; every change to an account is a configuration change event. Five failures in a row
lock the account for 30 s, doubling with each further failure (at most an hour); a success resets it.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta
from functools import lru_cache

from pydantic import BaseModel
from sqlmodel import Session, select

from appliance.access import one_time_codes, passwords
from appliance.access.tokens import revoke_all
from appliance.admin.changes import record_change
from appliance.context import Appliance
from appliance.db.tables import Role, Source, UserAccount, as_utc, utcnow
from appliance.errors import AccessRefused, ConfigError, NotFound
from audit.events import Action, AuditEvent, EventID, Outcome, Participant

FAILURES_BEFORE_LOCK = 5
_FIRST_LOCK = timedelta(seconds=30)
_LONGEST_LOCK = timedelta(hours=1)
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_TOTP_COLUMN = "user_account.totp_secret"
_REFUSED = "wrong user name, password or one-time code"


class Enrolment(BaseModel):
    """What the new user is given, once: never stored in the clear, never shown again."""

    username: str
    password: str
    totp_uri: str


class UserView(BaseModel):
    """An account as lists and the admin API show it: no hash, no secret."""

    username: str
    role: str
    disabled: bool
    must_change_password: bool
    locked_until: datetime | None
    sources: list[str]
    modalities: list[str]
    created_at: datetime

    @classmethod
    def of(cls, user: UserAccount) -> UserView:
        return cls(
            username=user.username,
            role=user.role.value,
            disabled=user.disabled,
            must_change_password=user.must_change_password,
            locked_until=user.locked_until,
            sources=list(user.sources),
            modalities=list(user.modalities),
            created_at=user.created_at,
        )


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return passwords.hash_password("not an account's password")


_failures = itertools.count(1)
_failures_seen = 0


def failed_sign_ins() -> int:
    """Sign-ins refused in this process since it started (for the metrics)."""
    return _failures_seen


def audit_sign_in(
    app: Appliance,
    username: str,
    role: str | None,
    address: str,
    ok: bool,
    description: str,
    logout: bool = False,
) -> None:
    global _failures_seen
    if not ok:
        _failures_seen = next(_failures)  # itertools.count: atomic under the GIL
    app.audit.emit(
        AuditEvent(
            event_id=EventID.USER_AUTHENTICATION,
            action=Action.EXECUTE,
            outcome=Outcome.SUCCESS if ok else Outcome.MINOR_FAILURE,
            type_code="Logout" if logout else "Login",
            participants=(Participant(username, host=address, is_requestor=True, role=role),),
            description=description,
        )
    )


def _fresh_secrets(app: Appliance, user: UserAccount) -> Enrolment:
    password, secret = passwords.new_password(), one_time_codes.new_secret()
    user.password_hash = passwords.hash_password(password)
    user.totp_secret_enc = app.fields.encrypt(_TOTP_COLUMN, secret)
    user.last_totp_step = 0
    user.must_change_password = True
    user.failed_logins, user.locked_until = 0, None
    return Enrolment(
        username=user.username,
        password=password,
        totp_uri=one_time_codes.enrolment_uri(secret, user.username),
    )


def _scope(
    session: Session, sources: list[str] | None, modalities: list[str] | None, role: Role
) -> tuple[list[str], list[str]]:
    """The scope as stored; a source name that is not a source is refused (a typo would otherwise
    leave a clinician who sees nothing, with no word why)."""
    if (sources or modalities) and role is not Role.CLINICIAN:
        raise ConfigError("only a clinician's access is limited to sources or modalities")
    named = sorted(set(sources or []))
    known = set(session.exec(select(Source.name).where(Source.name.in_(named))))  # type: ignore[attr-defined]
    unknown = [name for name in named if name not in known]
    if unknown:
        raise ConfigError(f"no source named {', '.join(unknown)}; 'appliance sources list' shows them")
    return named, sorted({m.upper() for m in modalities or []})


def add_user(
    app: Appliance,
    actor: str,
    username: str,
    role: Role,
    sources: list[str] | None = None,
    modalities: list[str] | None = None,
) -> Enrolment:
    if not _USERNAME.fullmatch(username):
        raise ConfigError(
            f"user name {username!r} is not usable: 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    with app.session() as session:
        scoped_sources, scoped_modalities = _scope(session, sources, modalities, role)
        if session.exec(select(UserAccount).where(UserAccount.username == username)).first():
            raise ConfigError(f"user {username} exists already; 'appliance users reset {username}' re-enrols")
        user = UserAccount(
            username=username,
            role=role,
            password_hash="",
            totp_secret_enc=b"",
            sources=scoped_sources,
            modalities=scoped_modalities,
        )
        enrolment = _fresh_secrets(app, user)
        session.add(user)
        session.commit()
    record_change(app, actor, Action.CREATE, "user", username, f"added as {role.value}")
    return enrolment


def _get(session: Session, username: str) -> UserAccount:
    user = session.exec(select(UserAccount).where(UserAccount.username == username)).first()
    if user is None:
        raise NotFound(f"no user {username}; 'appliance users list' shows them")
    return user


def list_users(app: Appliance) -> list[UserView]:
    with app.session() as session:
        return [UserView.of(u) for u in session.exec(select(UserAccount).order_by(UserAccount.username))]


def disable_user(app: Appliance, actor: str, username: str) -> None:
    """The account can no longer sign in, and its tokens stop working at once."""
    with app.session() as session:
        user = _get(session, username)
        user.disabled, user.changed_at = True, utcnow()
        session.add(user)
        session.commit()
        revoke_all(session, user)
    record_change(app, actor, Action.UPDATE, "user", username, "disabled")


def reset_user(app: Appliance, actor: str, username: str) -> Enrolment:
    """A new initial password and TOTP enrolment; unlocks and re-enables the account."""
    with app.session() as session:
        user = _get(session, username)
        enrolment = _fresh_secrets(app, user)
        user.disabled, user.changed_at = False, utcnow()
        session.add(user)
        session.commit()
        revoke_all(session, user)
    record_change(
        app, actor, Action.UPDATE, "user", username, "reset (new password and one-time code enrolment)"
    )
    return enrolment


def set_role(
    app: Appliance,
    actor: str,
    username: str,
    role: Role,
    sources: list[str] | None = None,
    modalities: list[str] | None = None,
) -> UserView:
    with app.session() as session:
        scoped_sources, scoped_modalities = _scope(session, sources, modalities, role)
        user = _get(session, username)
        user.role, user.sources, user.modalities = role, scoped_sources, scoped_modalities
        user.changed_at = utcnow()
        session.add(user)
        session.commit()
        view = UserView.of(user)
    scope = f" limited to sources {scoped_sources or 'all'}, modalities {scoped_modalities or 'all'}"
    record_change(app, actor, Action.UPDATE, "user", username, f"role {role.value}" + scope)
    return view


def _check_secrets(app: Appliance, session: Session, user: UserAccount, password: str, otp: str) -> bool:
    """Password and one-time code both right (the code's step then used up); counts a failure if not."""
    now = utcnow()
    step = None
    if passwords.verify_password(user.password_hash, password):
        secret = app.fields.decrypt(_TOTP_COLUMN, user.totp_secret_enc)
        step = one_time_codes.accepted_step(secret, otp, user.last_totp_step)
    if step is None:
        user.failed_logins += 1
        if user.failed_logins >= FAILURES_BEFORE_LOCK:
            lock = _FIRST_LOCK * 2 ** (user.failed_logins - FAILURES_BEFORE_LOCK)
            user.locked_until = now + min(lock, _LONGEST_LOCK)
    else:
        user.failed_logins, user.locked_until, user.last_totp_step = 0, None, step
    session.add(user)
    session.commit()
    return step is not None


def _signed_in(
    app: Appliance, session: Session, username: str, password: str, otp: str, address: str
) -> UserAccount:
    user = session.exec(select(UserAccount).where(UserAccount.username == username)).first()
    if user is None:
        passwords.verify_password(_dummy_hash(), password)  # the same time as for a real account
        audit_sign_in(app, username, None, address, False, "unknown user")
        raise AccessRefused(_REFUSED, 401)
    locked = as_utc(user.locked_until) if user.locked_until else None
    if locked is not None and locked > utcnow():
        audit_sign_in(app, username, user.role.value, address, False, "locked out")
        seconds = int((locked - utcnow()).total_seconds()) + 1
        raise AccessRefused(f"too many failed sign-ins: try again in {seconds} s", 429)
    if user.disabled:
        audit_sign_in(app, username, user.role.value, address, False, "account disabled")
        raise AccessRefused(_REFUSED, 401)
    if not _check_secrets(app, session, user, password, otp):
        audit_sign_in(app, username, user.role.value, address, False, "wrong password or one-time code")
        raise AccessRefused(_REFUSED, 401)
    return user


def sign_in(app: Appliance, username: str, password: str, otp: str, address: str) -> UserAccount:
    """The account, if the password and a fresh one-time code are right and it may sign in now."""
    with app.session() as session:
        user = _signed_in(app, session, username, password, otp, address)
        if user.must_change_password:
            audit_sign_in(app, username, user.role.value, address, False, "password change required")
            raise AccessRefused(
                "password change required before the first sign-in: POST /api/auth/password "
                'with {"username", "password", "otp", "new_password"}',
                403,
            )
    audit_sign_in(app, username, user.role.value, address, True, "signed in")
    return user


def first_sign_in_enrolment(app: Appliance, username: str, password: str, address: str) -> str | None:
    """The one-time code enrolment URI (to show as a QR code) of an account that has never signed
    in, once its initial password is given right; None for any other account. A wrong password
    counts as a failed sign-in, as on the sign-in itself."""
    with app.session() as session:
        user = session.exec(select(UserAccount).where(UserAccount.username == username)).first()
        if user is None or not user.must_change_password or user.last_totp_step or user.disabled:
            return None
        locked = as_utc(user.locked_until) if user.locked_until else None
        if (locked is not None and locked > utcnow()) or not passwords.verify_password(
            user.password_hash, password
        ):
            _signed_in(app, session, username, password, "", address)  # refuses: locked, or counts it
        secret = app.fields.decrypt(_TOTP_COLUMN, user.totp_secret_enc)
    return one_time_codes.enrolment_uri(secret, username)


def change_password(
    app: Appliance, username: str, password: str, otp: str, new_password: str, address: str
) -> UserAccount:
    with app.session() as session:
        user = _signed_in(app, session, username, password, otp, address)
        passwords.check_new_password(new_password, password)
        user.password_hash = passwords.hash_password(new_password)
        user.must_change_password, user.changed_at = False, utcnow()
        session.add(user)
        session.commit()
        session.refresh(user)
    audit_sign_in(app, username, user.role.value, address, True, "password changed")
    return user
