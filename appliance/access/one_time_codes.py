"""TOTP (RFC 6238, 30-second steps, six digits): each code is accepted once.

A code of the current step or one step either side (clock drift) is accepted only if its step is
later than the last step used by that account, so a code seen over a shoulder or in a log cannot be
replayed, not even within its own 30 seconds.
"""

from __future__ import annotations

import time

import pyotp

ISSUER = "Imaging appliance"
_DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()


def enrolment_uri(secret: str, username: str) -> str:
    """The ``otpauth://`` URI an authenticator app enrols from (shown once, as a QR code or text)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def accepted_step(secret: str, code: str, last_step: int, now: float | None = None) -> int | None:
    """The time step ``code`` belongs to, if it is valid and later than ``last_step``; else None."""
    totp = pyotp.TOTP(secret)
    moment = time.time() if now is None else now
    current = int(moment // totp.interval)
    code = code.strip()
    for step in range(current - _DRIFT_STEPS, current + _DRIFT_STEPS + 1):
        if step > last_step and pyotp.utils.strings_equal(totp.generate_otp(step), code):
            return step
    return None
