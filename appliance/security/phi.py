"""Patient-identifying columns: encrypted values and a keyed lookup, never plaintext in the DB.

The field key is a random 32-byte secret, wrapped by the KEK and kept in ``wrapped_secret``
(so KEK rotation re-wraps it like any data key). Two keys are derived from it with HKDF: one
for AES-GCM encryption of values (associated data: the column), one for the HMAC that finds a
patient again without storing the ID.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appliance.errors import IntegrityError
from appliance.security import crypto

FIELD_KEY_NAME = "db-field-key"


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


class FieldCipher:
    def __init__(self, secret: bytes) -> None:
        self._enc = _derive(secret, b"appliance/db-field/encrypt")
        self._mac = _derive(secret, b"appliance/db-field/lookup")

    def lookup(self, *parts: str) -> str:
        message = "\x1f".join(parts).encode()
        return hmac.new(self._mac, message, hashlib.sha256).hexdigest()

    def encrypt(self, column: str, value: str) -> bytes:
        return crypto.seal(self._enc, value.encode(), column.encode())

    def decrypt(self, column: str, blob: bytes) -> str:
        try:
            return crypto.open_sealed(self._enc, blob, column.encode()).decode()
        except crypto.AuthenticationFailed as exc:
            raise IntegrityError(f"encrypted column {column} failed authentication") from exc
