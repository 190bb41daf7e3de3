"""Signed checkpoints in the C2SP tlog-checkpoint form, as a signed note (Ed25519).

    <origin>
    <tree size>
    <base64 root hash>

    — <origin> <base64(key hash (4 bytes) || signature)>

The key hash is the first four bytes of SHA-256(name || "\\n" || 0x01 || public key), as in
C2SP signed-note for Ed25519 keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.errors import AuditIntegrityError

_DASH = "\u2014"


class CheckpointError(AuditIntegrityError):
    """A checkpoint is malformed, signed by another key, or its signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def _key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()[:4]


def sign(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> str:
    body = checkpoint.body()
    signature = key.sign(body.encode())
    stamp = base64.b64encode(_key_hash(checkpoint.origin, key.public_key()) + signature).decode()
    return f"{body}\n{_DASH} {checkpoint.origin} {stamp}\n"


def verify(note: str, public_key: Ed25519PublicKey, origin: str) -> Checkpoint:
    """Parse a signed checkpoint and check its signature; raise CheckpointError naming why."""
    body, separator, signatures = note.partition("\n\n")
    if not separator:
        raise CheckpointError("not a signed note: no blank line between text and signatures")
    lines = body.split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint text needs origin, size and root hash")
    if lines[0] != origin:
        raise CheckpointError(f"checkpoint origin {lines[0]!r} is not {origin!r}")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error) as exc:
        raise CheckpointError("checkpoint size or root hash is malformed") from exc
    if size < 0 or len(root) != 32:
        raise CheckpointError("checkpoint size or root hash is out of range")
    expected = _key_hash(origin, public_key)
    for line in signatures.strip("\n").split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH or parts[1] != origin:
            continue
        try:
            stamp = base64.b64decode(parts[2], validate=True)
        except binascii.Error:
            continue
        if stamp[:4] != expected:
            continue
        try:
            public_key.verify(stamp[4:], (body + "\n").encode())
        except InvalidSignature as exc:
            raise CheckpointError(f"signature of the checkpoint at size {size} does not verify") from exc
        return Checkpoint(origin, size, root)
    raise CheckpointError(f"checkpoint at size {size} carries no signature by the appliance's key")
