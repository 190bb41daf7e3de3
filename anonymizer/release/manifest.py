"""The release manifest: what a dataset version holds and the policy that made it, as an in-toto
Statement (v1) whose subjects are the files, signed in a DSSE envelope (see :mod:`.dsse`).

The predicate names the dataset, its version and parent, the appliance, the de-identification
policy (profile, options, table edition, a fingerprint of the whole, the PS3.15 method codes), the
counts, the audit log's checkpoint at release time, and per file its pseudonymised path, SHA-256,
size, modality and SOP class.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from anonymizer.errors import ReleaseError, ReleaseRejected
from anonymizer.release import dsse

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:imaging-appliance:dataset-release:v1"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_PATH = re.compile(r"[0-9A-Za-z._-]+(/[0-9A-Za-z._-]+)*")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ReleaseError(
            f"dataset name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


OBJECTS = "objects/sha256/"


def object_key(sha256: str) -> str:
    """Where a file's bytes live in a workspace: named by their SHA-256, shared by every version."""
    return OBJECTS + sha256


def release_prefix(name: str, version: int) -> str:
    return f"datasets/{name}/v{version}/"


def manifest_key(name: str, version: int) -> str:
    return release_prefix(name, version) + "manifest.dsse.json"


@dataclass(frozen=True)
class ReleaseFile:
    path: str  # patient/study/series/instance.dcm, all pseudonymised
    sha256: str
    size: int
    modality: str
    sop_class: str


@dataclass(frozen=True)
class Policy:
    """The de-identification policy of a release; ``fingerprint`` is the SHA-256 of all of it."""

    profile: str
    options: list[str]
    settings: dict  # the whole profile as configured (safe private list, pixel redaction)
    table: str  # the Table E.1-1 edition: its source and SHA-256
    fingerprint: str
    methods: list[dict]  # PS3.15 CID 7050 codes: {"code", "scheme", "meaning"}


@dataclass(frozen=True)
class ReleaseManifest:
    name: str
    version: int
    parent: int | None
    created: str  # ISO 8601
    appliance: str  # the appliance's identity (its audit origin and AE title)
    policy: Policy
    counts: dict  # patients, studies, series, instances, quarantined: {reason: n}, held_out_excluded
    audit_checkpoint: str  # the signed checkpoint of the appliance's audit log at release time
    files: tuple[ReleaseFile, ...] = field(default=())

    def statement(self) -> bytes:
        predicate = asdict(self)
        predicate["files"] = [asdict(f) for f in self.files]
        body = {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": f.path, "digest": {"sha256": f.sha256}} for f in self.files],
            "predicateType": PREDICATE_TYPE,
            "predicate": predicate,
        }
        return json.dumps(body, indent=1, sort_keys=True).encode()

    def sign(self, key: Ed25519PrivateKey) -> bytes:
        return dsse.sign(self.statement(), key)


def _parse(body: bytes) -> ReleaseManifest:
    try:
        statement = json.loads(body)
        if statement["_type"] != STATEMENT_TYPE or statement["predicateType"] != PREDICATE_TYPE:
            raise ReleaseRejected("the manifest is not a dataset-release statement")
        predicate = dict(statement["predicate"])
        files = tuple(ReleaseFile(**f) for f in predicate.pop("files"))
        manifest = ReleaseManifest(**{**predicate, "policy": Policy(**predicate["policy"]), "files": files})
        subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise ReleaseRejected(f"the manifest's statement is malformed ({type(exc).__name__})") from None
    if subjects != {f.path: f.sha256 for f in files} or len(subjects) != len(files):
        raise ReleaseRejected("the manifest's subjects and its file list differ")
    for entry in files:
        if not _PATH.fullmatch(entry.path) or ".." in entry.path.split("/"):
            raise ReleaseRejected(f"the manifest names an unsafe path: {entry.path!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", entry.sha256):
            raise ReleaseRejected(f"{entry.path}: not a SHA-256 digest")
    return manifest


def verify_manifest(envelope: bytes, trusted: list[Ed25519PublicKey]) -> ReleaseManifest:
    """The manifest in ``envelope``, once its signature verified with one of ``trusted``."""
    return _parse(dsse.verify(envelope, trusted))
