"""Password hashes (argon2id, parameters fixed here and recorded in every hash) and new passwords.

Parameters: RFC 9106's second recommended option (64 MiB of memory, 3 passes, 4 lanes). A login is
meant to cost a guesser memory and time, not to be fast: see ``benchmarks/login.py`` for the time.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from appliance.errors import AccessRefused

MEMORY_KIB = 65536
PASSES = 3
LANES = 4
MIN_LENGTH = 12

_HASHER = PasswordHasher(time_cost=PASSES, memory_cost=MEMORY_KIB, parallelism=LANES, type=Type.ID)


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    """An initial password, shown once: 20 characters of a URL-safe alphabet (120 bits)."""
    return secrets.token_urlsafe(15)


def check_new_password(new: str, old: str) -> None:
    if len(new) < MIN_LENGTH:
        raise AccessRefused(f"the new password is too short: use at least {MIN_LENGTH} characters", 400)
    if new == old:
        raise AccessRefused("the new password is the initial one: choose another", 400)
