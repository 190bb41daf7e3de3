"""Signed bundle manifests: the SHA-256 of every file of a MONAI bundle, signed with Ed25519.

A signed bundle holds, beside the Model Zoo layout (``configs/metadata.json``, ...),
``manifest.json`` (publisher, name, version, ``files``: path -> SHA-256) and ``manifest.sig``
(base64 Ed25519 signature over the manifest's bytes). Verification checks the signature against
the trusted publishers' keys first, then every file, and accepts no file the manifest omits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from models.errors import BundleRejected

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
METADATA = "configs/metadata.json"


@dataclass(frozen=True)
class Manifest:
    publisher: str
    name: str
    version: str
    files: dict[str, str]


def _digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _bundle_files(bundle: Path) -> dict[str, Path]:
    files = {p.relative_to(bundle).as_posix(): p for p in bundle.rglob("*") if p.is_file()}
    files.pop(MANIFEST, None)
    files.pop(SIGNATURE, None)
    return files


def sign_bundle(bundle: Path, key: Ed25519PrivateKey, publisher: str, name: str | None = None) -> Manifest:
    """Write manifest.json and manifest.sig for the bundle as it is now; the model's name is the
    folder's unless given (a candidate trained in a folder of another name keeps its parent's)."""
    try:
        metadata = json.loads((bundle / METADATA).read_text())
    except (OSError, ValueError) as exc:
        raise BundleRejected(f"{bundle} has no readable {METADATA}") from exc
    name = name or bundle.name  # the Model Zoo's identifier; metadata's "name" is a display title
    files = {rel: _digest(path) for rel, path in sorted(_bundle_files(bundle).items())}
    manifest = Manifest(publisher, name, str(metadata.get("version", "0")), files)
    body = json.dumps(vars(manifest), indent=2, sort_keys=True).encode()
    (bundle / MANIFEST).write_bytes(body)
    (bundle / SIGNATURE).write_text(base64.b64encode(key.sign(body)).decode() + "\n")
    return manifest


def verify_bundle(bundle: Path, trusted: dict[str, Ed25519PublicKey]) -> Manifest:
    """The bundle's manifest, if its signature and every file check out; else BundleRejected."""
    if not (bundle / MANIFEST).is_file() or not (bundle / SIGNATURE).is_file():
        raise BundleRejected(f"{bundle.name}: unsigned bundle (no {MANIFEST} and {SIGNATURE})")
    body = (bundle / MANIFEST).read_bytes()
    try:
        fields = json.loads(body)
        manifest = Manifest(fields["publisher"], fields["name"], fields["version"], dict(fields["files"]))
        signature = base64.b64decode((bundle / SIGNATURE).read_text().strip(), validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise BundleRejected(f"{bundle.name}: {MANIFEST} or {SIGNATURE} is malformed") from exc
    key = trusted.get(manifest.publisher)
    if key is None:
        raise BundleRejected(
            f"{bundle.name}: publisher {manifest.publisher!r} is not trusted "
            f"(trusted: {', '.join(sorted(trusted)) or 'none'})"
        )
    try:
        key.verify(signature, body)
    except InvalidSignature as exc:
        raise BundleRejected(
            f"{bundle.name}: {SIGNATURE} does not verify with {manifest.publisher}'s key"
        ) from exc
    present = _bundle_files(bundle)
    for rel, digest in sorted(manifest.files.items()):
        if rel not in present:
            raise BundleRejected(f"{bundle.name}: {rel} is in the signed manifest but missing")
        if _digest(present[rel]) != digest:
            raise BundleRejected(f"{bundle.name}: {rel} differs from its signed SHA-256 (modified)")
    extra = sorted(set(present) - set(manifest.files))
    if extra:
        raise BundleRejected(f"{bundle.name}: {extra[0]} is not in the signed manifest")
    return manifest
