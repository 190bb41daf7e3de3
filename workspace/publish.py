"""``research keygen``, ``research sign`` and ``research submit``: a candidate signed by its publisher
and put in the workspace's model inbox, where the appliance fetches it.

The inbox is ``models/inbox/NAME/VERSION/`` under the workspace URL (a folder or s3://BUCKET/PREFIX).
The signed manifest goes last, so the appliance sees a candidate only once every file is there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from anonymizer.release.stores import WorkspaceStore, sha256_hex
from models.lineage import INBOX, read_lineage
from models.manifest import MANIFEST, SIGNATURE, Manifest, sign_bundle
from workspace.errors import ResearchError


def keygen(private_path: Path) -> Path:
    """Write a new Ed25519 key (PEM, mode 0600) and its public half beside it (``.pub``)."""
    public_path = private_path.with_suffix(".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise ResearchError(f"{path} exists: give another name (a key is never overwritten)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return public_path


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        raise ResearchError(
            f"{path} is not an unencrypted PEM private key (make one with `research keygen`)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ResearchError(f"{path} is not an Ed25519 key: bundles are signed with Ed25519")
    return key


def sign(candidate: Path, key_path: Path, publisher: str) -> Manifest:
    if not (candidate / "configs" / "metadata.json").is_file():
        raise ResearchError(f"{candidate} is not a bundle (no configs/metadata.json)")
    lineage = read_lineage(candidate)
    name = lineage.parent.name if lineage is not None else None  # a candidate keeps its model's name
    return sign_bundle(candidate, load_key(key_path), publisher, name)


def submit(candidate: Path, store: WorkspaceStore) -> str:
    """Upload a signed candidate to the inbox; return its inbox prefix."""
    try:
        manifest = json.loads((candidate / MANIFEST).read_text())
        name, version = manifest["name"], manifest["version"]
    except (OSError, ValueError, KeyError):
        raise ResearchError(
            f"{candidate} is not signed: run `research sign {candidate} --key KEY.pem` first"
        ) from None
    if not (candidate / SIGNATURE).is_file():
        raise ResearchError(f"{candidate} has no {SIGNATURE}: run `research sign` first")
    prefix = f"{INBOX}/{name}/{version}"
    files = sorted(p for p in candidate.rglob("*") if p.is_file())
    last = {MANIFEST: 1, SIGNATURE: 2}
    for path in sorted(files, key=lambda p: last.get(p.relative_to(candidate).as_posix(), 0)):
        data = path.read_bytes()
        store.put(f"{prefix}/{path.relative_to(candidate).as_posix()}", data, sha256_hex(data))
    return prefix
