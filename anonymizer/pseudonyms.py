"""Keyed pseudonyms: UIDs, patient pseudonyms and per-patient date offsets from one secret.

All are HMAC-SHA256 of the original under the appliance's pseudonymisation secret, each under its own
label, so the same original always gives the same result (across series, studies and exports) and
nobody without the secret can reverse one or confirm a guess. Dates move by whole days, so a
patient's intervals (and times of day) are kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import date, timedelta

from anonymizer.errors import AnonymizerError

MIN_SECRET_BYTES = 16
_MIN_SHIFT_DAYS = 365
_SHIFT_SPAN_DAYS = 3650
_UID_CACHE = 65536


class Pseudonymizer:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise AnonymizerError(
                f"the pseudonymisation secret has {len(secret)} bytes; at least {MIN_SECRET_BYTES} are needed"
            )
        self._secret = secret
        self._uids: dict[str, str] = {}

    def _mac(self, label: str, value: str) -> bytes:
        return hmac.new(self._secret, f"{label}\x00{value}".encode(), hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """A UID under the 2.25 root (PS3.5 B.2) from 128 bits of the HMAC; at most 44 characters."""
        original = original.strip("\x00 ")
        found = self._uids.get(original)
        if found is None:
            if len(self._uids) >= _UID_CACHE:  # a study's UIDs recur; a long batch must not grow without end
                self._uids.clear()
            found = "2.25." + str(int.from_bytes(self._mac("uid", original)[:16], "big"))
            self._uids[original] = found
        return found

    def patient(self, patient_key: str) -> str:
        """The patient pseudonym: ``ANON`` and 16 base32 characters (80 bits) of the HMAC."""
        digest = self._mac("patient", patient_key)[:10]
        return "ANON" + base64.b32encode(digest).decode().rstrip("=")

    def day_offset(self, patient_key: str) -> int:
        """Days to move this patient's dates: back by one to eleven years, never zero."""
        value = int.from_bytes(self._mac("dates", patient_key)[:8], "big")
        return -(_MIN_SHIFT_DAYS + value % _SHIFT_SPAN_DAYS)


def shift_da(value: str, days: int) -> str | None:
    """Shift a DA value (or a DA range ``A-B``); None when it is not a valid date."""
    if "-" in value:
        parts = [shift_da(part, days) if part else "" for part in value.split("-", 1)]
        return None if None in parts else "-".join(parts)  # type: ignore[arg-type]
    text = value.strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        moved = date(int(text[:4]), int(text[4:6]), int(text[6:])) + timedelta(days=days)
    except ValueError:
        return None
    return moved.strftime("%Y%m%d")


def shift_dt(value: str, days: int) -> str | None:
    """Shift the date part of a DT value, keeping its time and UTC offset; None when invalid."""
    text = value.strip()
    if len(text) < 8:
        return None
    head = shift_da(text[:8], days)
    return None if head is None else head + text[8:]
