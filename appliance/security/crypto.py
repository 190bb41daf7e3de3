"""AES-256-GCM primitives for envelope encryption.

A sealed blob is ``nonce (12 bytes) || ciphertext || tag (16 bytes)``. The associated data is the
caller's statement of *what* the blob is (an object's identity, a key's purpose), so a blob moved
to another identity fails to open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class AuthenticationFailed(Exception):
    """The blob, its key or its associated data do not match (tampered, swapped or wrong key)."""


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    return b"".join(seal_parts(key, plaintext, associated_data))


def seal_parts(key: bytes, plaintext: bytes | memoryview, associated_data: bytes) -> tuple[bytes, bytes]:
    """A sealed blob as its two parts, (nonce, ciphertext || tag), for a writer that need not join
    them (an instance is half a megabyte: each copy costs)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(key: bytes, blob: bytes | memoryview, associated_data: bytes) -> bytes:
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise AuthenticationFailed("sealed blob is shorter than nonce and tag")
    try:
        view = memoryview(blob)  # slices of it are not copies (a series is hundreds of MB of blobs)
        return AESGCM(key).decrypt(view[:NONCE_BYTES], view[NONCE_BYTES:], associated_data)
    except InvalidTag as exc:
        raise AuthenticationFailed("authentication tag does not match") from exc
