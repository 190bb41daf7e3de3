"""The encrypted object store: every object sealed with its own data key, written durably.

An object is at ``objects/ab/<id>.enc``, in one of two layouts:

- ``MAGIC || nonce || ciphertext || tag``: the object sealed whole;
- ``SPLIT_MAGIC || length || header segment || body segment``, each segment ``nonce ||
  ciphertext || tag`` and ``length`` (4 bytes, little endian) the header segment's: an image
  whose header (file meta and every element before the pixel data) is sealed apart from its
  pixel data, so that what only needs the header (DICOMweb metadata, summaries) reads and
  decrypts a few kilobytes instead of the whole image. Each segment is authenticated on its own,
  under associated data that names the object and the segment: a segment moved to another object,
  or the two swapped, fails to open.

The data key, wrapped by the KEK, is returned to the caller to keep in the index (so rotating the
KEK re-wraps index rows and never rewrites object data).
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Iterator
from pathlib import Path

from appliance.errors import IntegrityError, StoreError
from appliance.security import crypto
from appliance.security.keys import Keyring, WrappedKey
from durable import fsync_directory, write_durably

MAGIC = b"APLOBJ1\x00"
SPLIT_MAGIC = b"APLOBJ2\x00"
_LENGTH = struct.Struct("<I")
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

    def put(self, object_id: str, data: bytes, header_length: int | None = None) -> WrappedKey:
        """Encrypt and durably write ``data``; return the wrapped data key for the index.

        ``header_length``: where the pixel data begins, for an object whose header is to be read
        on its own (see :meth:`get_header`); the object is then sealed as two segments."""
        data_key = crypto.new_key()
        wrapped = self.keyring.wrap(data_key, _purpose(object_id))  # first: a KEK failure leaves no file
        purpose = _purpose(object_id)
        if header_length is not None and 0 < header_length < len(data):
            view = memoryview(data)
            head = crypto.seal_parts(data_key, view[:header_length], f"{purpose}:header".encode())
            body = crypto.seal_parts(data_key, view[header_length:], f"{purpose}:body".encode())
            length = _LENGTH.pack(len(head[0]) + len(head[1]))
            parts: tuple[bytes, ...] = (SPLIT_MAGIC, length, *head, *body)
        else:
            parts = (MAGIC, *crypto.seal_parts(data_key, data, purpose.encode()))
        try:
            write_durably(self.path_of(object_id), parts)
        except OSError as exc:
            raise StoreError(f"could not write object {object_id}: {exc.strerror}") from exc
        return wrapped

    def get(self, object_id: str, wrapped: WrappedKey) -> bytes:
        blob = memoryview(self._read(object_id))
        data_key = self.keyring.unwrap(wrapped, _purpose(object_id))
        if blob[: len(MAGIC)] == MAGIC:
            return self._open(object_id, data_key, blob[len(MAGIC) :], "")
        head_end = len(SPLIT_MAGIC) + _LENGTH.size + self._header_length(object_id, blob)
        header = self._open(object_id, data_key, blob[len(SPLIT_MAGIC) + _LENGTH.size : head_end], ":header")
        return header + self._open(object_id, data_key, blob[head_end:], ":body")

    def get_header(self, object_id: str, wrapped: WrappedKey) -> bytes:
        """The object's bytes up to its pixel data, reading and decrypting only those, where it was
        stored with its header apart; otherwise the whole object."""
        path = self.path_of(object_id)
        start = len(SPLIT_MAGIC) + _LENGTH.size
        try:
            with open(path, "rb") as file:
                prefix = file.read(start)
                if prefix[: len(SPLIT_MAGIC)] != SPLIT_MAGIC:
                    return self.get(object_id, wrapped)
                sealed = file.read(self._header_length(object_id, prefix))
        except FileNotFoundError as exc:
            raise StoreError(f"object {object_id} is indexed but its file is missing") from exc
        data_key = self.keyring.unwrap(wrapped, _purpose(object_id))
        return self._open(object_id, data_key, memoryview(sealed), ":header")

    def _read(self, object_id: str) -> bytes:
        try:
            blob = self.path_of(object_id).read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"object {object_id} is indexed but its file is missing") from exc
        if not blob.startswith((MAGIC, SPLIT_MAGIC)):
            raise IntegrityError(f"object {object_id}: file does not start with the store's header")
        return blob

    @staticmethod
    def _header_length(object_id: str, blob: bytes | memoryview) -> int:
        if len(blob) < len(SPLIT_MAGIC) + _LENGTH.size:
            raise IntegrityError(f"object {object_id}: file is cut short in its header")
        return _LENGTH.unpack_from(blob, len(SPLIT_MAGIC))[0]

    @staticmethod
    def _open(object_id: str, data_key: bytes, sealed: memoryview, segment: str) -> bytes:
        try:
            return crypto.open_sealed(data_key, sealed, f"{_purpose(object_id)}{segment}".encode())
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
