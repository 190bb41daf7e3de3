"""The encrypted object store: every object sealed with its own data key, written durably.

On disk an object is ``MAGIC || nonce || ciphertext || tag`` at ``objects/ab/<id>.enc``; the
data key, wrapped by the KEK, is returned to the caller to keep in the index (so rotating the KEK
re-wraps index rows and never rewrites object data). The associated data names the object, so
swapping two files is detected on read.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

from appliance.errors import IntegrityError, StoreError
from appliance.security import crypto
from appliance.security.keys import Keyring, WrappedKey
from durable import fsync_directory, write_durably

MAGIC = b"APLOBJ1\x00"
SUFFIX = ".enc"


def new_object_id() -> str:
    """A fresh, opaque object id: random, so it reveals nothing and no write reuses a path."""
    return secrets.token_hex(20)


def _purpose(object_id: str) -> str:
    return f"object:{object_id}"


class EncryptedStore:
    def __init__(self, root: Path, keyring: Keyring) -> None:
        self.root = root
        self.keyring = keyring
        self.objects = root / "objects"

    def path_of(self, object_id: str) -> Path:
        return self.objects / object_id[:2] / f"{object_id}{SUFFIX}"

    def prepare(self) -> None:
        """Create the 256 shard folders once, durably, so no write has to create a folder."""
        self.objects.mkdir(parents=True, exist_ok=True)
        for shard in range(256):
            (self.objects / f"{shard:02x}").mkdir(exist_ok=True)
        fsync_directory(self.objects)
        fsync_directory(self.root)

    def put(self, object_id: str, data: bytes) -> WrappedKey:
        """Encrypt and durably write ``data``; return the wrapped data key for the index."""
        data_key = crypto.new_key()
        wrapped = self.keyring.wrap(data_key, _purpose(object_id))  # first: a KEK failure leaves no file
        nonce, sealed = crypto.seal_parts(data_key, data, _purpose(object_id).encode())
        path = self.path_of(object_id)
        try:
            write_durably(path, (MAGIC, nonce, sealed))
        except OSError as exc:
            raise StoreError(f"could not write object {object_id}: {exc.strerror}") from exc
        return wrapped

    def get(self, object_id: str, wrapped: WrappedKey) -> bytes:
        path = self.path_of(object_id)
        try:
            blob = path.read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"object {object_id} is indexed but its file is missing") from exc
        if not blob.startswith(MAGIC):
            raise IntegrityError(f"object {object_id}: file does not start with the store's header")
        data_key = self.keyring.unwrap(wrapped, _purpose(object_id))
        try:
            return crypto.open_sealed(data_key, memoryview(blob)[len(MAGIC) :], _purpose(object_id).encode())
        except crypto.AuthenticationFailed as exc:
            raise IntegrityError(
                f"object {object_id} failed authentication: its file was altered or swapped "
                "with another object's"
            ) from exc

    def delete(self, object_id: str) -> None:
        self.path_of(object_id).unlink(missing_ok=True)

    def object_ids(self) -> Iterator[str]:
        for path in self.objects.glob(f"*/*{SUFFIX}"):
            yield path.name[: -len(SUFFIX)]

    def remove_partial_writes(self) -> int:
        """Delete temporary files left by a crash mid-write (never acknowledged)."""
        count = 0
        for path in self.objects.glob("*/.tmp-*"):
            path.unlink(missing_ok=True)
            count += 1
        return count
