"""Sign-in over HTTP: first-login password change, one-time codes used once, lock-out and its
delay, argon2id hashes, tokens that expire and are revoked, CSRF for the session cookie."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import select

from appliance.context import open_appliance
from appliance.db.tables import AccessToken, Role, UserAccount, as_utc, utcnow
from tests.support.people import NEW_PASSWORD

pytestmark = pytest.mark.slow


def _me(site, token: str) -> int:
    return httpx.get(f"{site.base}/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code


def test_first_sign_in_needs_a_password_change_and_a_code_is_used_once(site):
    person = site.person("first-login", Role.CLINICIAN)
    response = person.login()
    assert response.status_code == 403
    assert "password change required" in response.json()["detail"]
    assert person.change_password().status_code == 204
    code = person.code()
    body = {"username": person.username, "password": NEW_PASSWORD, "otp": code}
    first = httpx.post(f"{site.base}/api/auth/login", json=body)
    assert first.status_code == 200 and first.json()["expires_in"] == 900
    replayed = httpx.post(f"{site.base}/api/auth/login", json=body)
    assert replayed.status_code == 401  # the same code, a second time, within its 30 s


def test_password_hashes_are_argon2id_with_recorded_parameters(site):
    person = site.person("hash-check", Role.AUDITOR)
    app = open_appliance(site.home)
    try:
        with app.session() as session:
            user = session.exec(select(UserAccount).where(UserAccount.username == "hash-check")).one()
    finally:
        app.close()
    assert user.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert person.secret.encode() not in user.totp_secret_enc  # the TOTP secret is stored encrypted


def test_lock_out_after_five_failures_then_a_growing_delay(site):
    person = site.person("guessed-at", Role.CLINICIAN)
    person.change_password()
    for _ in range(5):
        assert person.login(password="not the password").status_code == 401
    locked = person.login()  # the right password: refused while locked, before anything is checked
    assert locked.status_code == 429
    seconds = int(locked.json()["detail"].split("try again in ")[1].split(" s")[0])
    assert 20 <= seconds <= 31
    app = open_appliance(site.home)
    try:
        with app.session() as session:  # the lock runs out; one more failure locks for twice as long
            session.exec(
                update(UserAccount).where(UserAccount.username == "guessed-at").values(locked_until=None)
            )
            session.commit()
    finally:
        app.close()
    assert person.login(password="wrong again").status_code == 401
    again = person.login()
    assert again.status_code == 429
    assert 50 <= int(again.json()["detail"].split("try again in ")[1].split(" s")[0]) <= 61


def test_tokens_expire_and_logout_revokes(site):
    person = site.person("short-lived", Role.AUDITOR)
    token = person.token()
    assert _me(site, token) == 200
    app = open_appliance(site.home)
    try:
        with app.session() as session:
            session.exec(update(AccessToken).values(expires_at=utcnow() - timedelta(seconds=1)))
            session.commit()
    finally:
        app.close()
    assert _me(site, token) == 401
    token = person.login().json()["access_token"]
    assert _me(site, token) == 200
    logout = httpx.post(f"{site.base}/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert logout.status_code == 204
    assert _me(site, token) == 401


def test_the_session_cookie_needs_the_csrf_token_to_change_anything(site):
    person = site.person("browser-user", Role.ADMIN)
    person.change_password()
    login = person.login()
    cookie = login.cookies.get("appliance_session")
    header = login.headers["set-cookie"].lower()
    assert "httponly" in header and "secure" in header and "samesite=strict" in header
    csrf = login.json()["csrf_token"]
    cookies = {"appliance_session": cookie}
    assert httpx.get(f"{site.base}/api/users", cookies=cookies).status_code == 200  # a read: no CSRF needed
    body = {"username": "made-by-cookie", "role": "auditor"}
    refused = httpx.post(f"{site.base}/api/users", cookies=cookies, json=body)
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["detail"]
    made = httpx.post(f"{site.base}/api/users", cookies=cookies, json=body, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201 and made.json()["totp_uri"].startswith("otpauth://totp/")


def test_a_disabled_account_loses_its_tokens_at_once(site):
    admin = site.person("admin-disabling", Role.ADMIN)
    person = site.person("leaving", Role.CLINICIAN)
    token = person.token()
    assert _me(site, token) == 200
    response = httpx.post(
        f"{site.base}/api/users/leaving/disable", headers={"Authorization": f"Bearer {admin.token()}"}
    )
    assert response.status_code == 204
    assert _me(site, token) == 401
    assert person.login().status_code == 401


def test_a_page_session_slides_while_its_person_is_active(site):
    """A person's requests with the cookie push the session's end out again; the page's own polling
    does not, nor does a program's bearer token; and no session outlives ``http.session_hours``."""
    person = site.person("sliding", Role.CLINICIAN)
    token = person.token()
    cookies = {"appliance_session": token}
    app = open_appliance(site.home)

    def ends_in(**changes) -> float:  # type: ignore[no-untyped-def]
        with app.session() as session:
            row = session.exec(select(AccessToken).where(AccessToken.user_pk == UserAccount.id)
                               .where(UserAccount.username == "sliding")).one()  # fmt: skip
            for key, value in changes.items():
                setattr(row, key, value)
            session.add(row)
            session.commit()
            session.refresh(row)
            return (as_utc(row.expires_at) - utcnow()).total_seconds()

    try:
        assert ends_in(expires_at=utcnow() + timedelta(seconds=60)) < 61
        polled = httpx.get(
            f"{site.base}/worklist/states", cookies=cookies, headers={"X-Background-Refresh": "1"}
        )
        assert polled.status_code == 200 and ends_in() < 61
        by_program = httpx.get(f"{site.base}/worklist/states", headers={"Authorization": f"Bearer {token}"})
        assert by_program.status_code == 200 and ends_in() < 61
        assert httpx.get(f"{site.base}/worklist/states", cookies=cookies).status_code == 200
        assert 890 < ends_in() <= 900  # a person's request: a whole token lifetime again

        ends_in(
            created_at=utcnow() - timedelta(hours=12) + timedelta(seconds=120),
            expires_at=utcnow() + timedelta(seconds=60),
        )
        assert httpx.get(f"{site.base}/worklist/states", cookies=cookies).status_code == 200
        assert ends_in() <= 120  # twelve hours after sign-in at the latest
    finally:
        app.close()
