"""The audit log: append-only, encrypted entries that are the leaves of a Merkle tree.

On disk, in the log directory:

* ``entries.log``: records ``u32 length || chain (32) || sealed entry``. A sealed entry is
  AES-256-GCM(audit key, event JSON) as ``nonce || ciphertext || tag``, its associated data the
  entry's index. The leaf hash is RFC 6962's over the sealed bytes; ``chain`` is
  SHA-256(previous chain || leaf hash), so a naive edit is pinned to the first entry it breaks.
* ``checkpoints/<size>.note``: signed checkpoints (see :mod:`audit.checkpoint`), written every
  ``checkpoint_every`` entries or ``checkpoint_seconds`` and on close; each is also appended to
  the witness file, which lives outside the log directory so a rollback of the log shows.

Appends use group commit: ``emit`` queues the event and returns at once; a writer thread takes
every queued event, appends them under an exclusive lock (several processes may write one log),
fsyncs, and only then counts them written (``flush`` waits for that).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import queue
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audit import checkpoint, merkle
from audit.errors import AuditError, AuditIntegrityError
from audit.events import AuditEvent
from durable import take_batch, write_durably

log = logging.getLogger(__name__)

ENTRIES = "entries.log"
CHECKPOINTS = "checkpoints"
CLEAN_STOPS = "clean-stops.jsonl"  # the signed checkpoint each writer made as it closed
_HEADER = struct.Struct("<I32s")
GENESIS = bytes(32)  # the chain value before the first entry
NONCE_BYTES = 12


def entry_aad(index: int) -> bytes:
    return f"audit-entry|v1|{index}".encode()


def chain_next(previous: bytes, hashed_leaf: bytes) -> bytes:
    return hashlib.sha256(previous + hashed_leaf).digest()


@dataclass(frozen=True)
class Record:
    index: int
    offset: int
    chain: bytes
    sealed: bytes

    @property
    def end(self) -> int:
        """Byte offset of the next record."""
        return self.offset + _HEADER.size + len(self.sealed)


def read_records(path: Path, offset: int = 0, index: int = 0) -> Iterator[Record]:
    """Records in order from byte ``offset`` (record ``index``); a torn record raises naming it."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    start_offset, offset = offset, 0
    while offset < len(data):
        if offset + _HEADER.size > len(data):
            raise AuditIntegrityError(f"entry {index}: record header truncated at byte {offset}")
        length, chain = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        if start + length > len(data):
            raise AuditIntegrityError(
                f"entry {index}: record truncated ({len(data) - start} of {length} bytes)"
            )
        yield Record(index, start_offset + offset, chain, data[start : start + length])
        offset, index = start + length, index + 1


class AuditLog:
    """Writer of one log directory (the appliance's AuditSink)."""

    def __init__(
        self,
        directory: Path,
        encryption_key: bytes,
        signing_key: Ed25519PrivateKey,
        origin: str,
        witness: Path,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 5.0,
    ) -> None:
        self.directory = directory
        self.origin = origin
        self.witness = witness
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self._aead_key = encryption_key
        self._signing_key = signing_key
        (directory / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        witness.parent.mkdir(parents=True, exist_ok=True)
        witness.touch(mode=0o600, exist_ok=True)  # from now on a missing witness is a deleted one
        self._path = directory / ENTRIES
        self._path.touch(mode=0o600, exist_ok=True)
        self._tree = merkle.CompactRange()
        self._chain = GENESIS
        self._offset = 0
        self._last_checkpoint = (0, time.monotonic())
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._written = threading.Condition()
        self._enqueued = 0
        self._committed = 0
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    # -- the sink ---------------------------------------------------------------------------
    def emit(self, event: AuditEvent) -> None:
        """Queue the event; it is written (fsynced) by the writer thread shortly after."""
        payload = json.dumps(event.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        with self._written:
            self._enqueued += 1
        self._queue.put(payload)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every event emitted so far is on disk."""
        with self._written:
            target = self._enqueued
            if not self._written.wait_for(lambda: self._committed >= target, timeout):
                raise AuditError(f"audit log did not write {target - self._committed} events in {timeout}s")

    def checkpoint(self) -> str:
        """Write what is queued and sign a checkpoint of the whole log now; its note ("" while the
        log is empty). A dataset release holds it: the log as it stood when the release was made."""
        self.flush()
        notes: list[str] = []

        def sign_and_read() -> None:  # under the lock: no append moves the size in between
            self._write_checkpoint()
            if self._tree.size:
                notes.append((self.directory / CHECKPOINTS / f"{self._tree.size:012d}.note").read_text())

        self._locked(sign_and_read)
        return notes[0] if notes else ""

    def close(self) -> None:
        """Write what is queued, sign a checkpoint of the whole log, and record it as a clean stop
        (the witness must hold a checkpoint at least that new: see :mod:`audit.verify`). Once only."""
        if not self._thread.is_alive():
            return
        self.flush()
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._locked(self._record_clean_stop)

    def _record_clean_stop(self) -> None:
        """Checkpoint the log and record that checkpoint, under one lock: between two, another
        process could append, and the size caught up to would have no checkpoint yet."""
        self._write_checkpoint()
        if self._tree.size == 0:
            return
        note = (self.directory / CHECKPOINTS / f"{self._tree.size:012d}.note").read_text()
        with open(self.directory / CLEAN_STOPS, "a") as stops:
            stops.write(json.dumps({"note": note}) + "\n")
            stops.flush()
            os.fsync(stops.fileno())

    # -- writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.checkpoint_seconds)
            except queue.Empty:  # quiet for a while: sign what the log holds (other writers' too)
                self._locked(self._write_checkpoint)
                continue
            if item is None:
                return
            batch = take_batch(self._queue, item)
            try:
                self._locked(self._append, batch)
            except Exception as exc:  # never lose the writer; the events stay uncounted
                log.error("audit append failed (%s)", type(exc).__name__)
                continue
            with self._written:
                self._committed += len(batch)
                self._written.notify_all()

    def _locked(self, action: Callable[..., None], *args: object) -> None:
        with open(self._path, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self._catch_up(handle)
                action(*args)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _catch_up(self, handle: BinaryIO) -> None:
        """Take in records appended by other processes since this one last looked.

        Appends happen under the lock, so bytes after the last whole record can only be a
        record torn by a crash mid-write (never fsynced, never reported written): cut them.
        """
        handle.seek(self._offset)
        data = handle.read()
        position = 0
        while position + _HEADER.size <= len(data):
            length, chain = _HEADER.unpack_from(data, position)
            sealed = data[position + _HEADER.size : position + _HEADER.size + length]
            if len(sealed) < length:
                break
            hashed = merkle.leaf_hash(sealed)
            self._tree.append(hashed)
            self._chain = chain_next(self._chain, hashed)
            position += _HEADER.size + length
        self._offset += position
        if position < len(data):
            log.warning("audit log: cutting a torn record of %d bytes left by a crash", len(data) - position)
            handle.truncate(self._offset)
            os.fsync(handle.fileno())

    def _append(self, payloads: list[bytes]) -> None:
        aead = AESGCM(self._aead_key)
        out = bytearray()
        for payload in payloads:
            index = self._tree.size
            nonce = os.urandom(NONCE_BYTES)
            sealed = nonce + aead.encrypt(nonce, payload, entry_aad(index))
            hashed = merkle.leaf_hash(sealed)
            self._chain = chain_next(self._chain, hashed)
            self._tree.append(hashed)
            out += _HEADER.pack(len(sealed), self._chain) + sealed
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, bytes(out))
            os.fsync(fd)
        finally:
            os.close(fd)
        self._offset += len(out)
        size, at = self._last_checkpoint
        due = time.monotonic() - at >= self.checkpoint_seconds
        if self._tree.size - size >= self.checkpoint_every or due:
            self._write_checkpoint()

    def _write_checkpoint(self) -> None:
        size = self._tree.size
        if size == 0 or size == self._last_checkpoint[0]:
            return
        path = self.directory / CHECKPOINTS / f"{size:012d}.note"
        self._last_checkpoint = (size, time.monotonic())
        if path.exists():  # another process of the appliance signed and witnessed this size
            return
        note = checkpoint.sign(checkpoint.Checkpoint(self.origin, size, self._tree.root()), self._signing_key)
        write_durably(path, note.encode())
        with open(self.witness, "a") as witness:
            witness.write(json.dumps({"note": note}) + "\n")
            witness.flush()
            os.fsync(witness.fileno())
