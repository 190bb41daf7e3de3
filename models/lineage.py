"""A model version's lineage (``configs/lineage.json``): what it was trained from and how.

Written by ``research train`` into the candidate bundle, so the publisher's signature covers it;
read by the appliance, which imports a candidate only when the release it names is one the
appliance signed and holds none of its held-out cases.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from models.errors import BundleRejected

LINEAGE = "configs/lineage.json"


INBOX = "models/inbox"  # a workspace's candidates, as INBOX/NAME/VERSION/<bundle files>: submit and fetch


@dataclass(frozen=True)
class ReleaseRef:
    """The dataset release a version was trained on: its name, version and the SHA-256 of its
    signed manifest (the DSSE envelope's bytes, as the appliance recorded it when it released)."""

    name: str
    version: int
    manifest_sha256: str


@dataclass(frozen=True)
class ParentRef:
    name: str
    version: str
    manifest_sha256: str  # of the parent bundle's signed manifest.json


@dataclass(frozen=True)
class Lineage:
    parent: ParentRef
    release: ReleaseRef
    epochs: int
    seed: int
    device: str
    trained_at: str
    seconds: float
    cases: dict[str, int]
    libraries: dict[str, str]
    key_metric: str
    best_validation: float | None
    per_epoch: list[dict] = field(default_factory=list)

    def write(self, bundle: Path) -> None:
        (bundle / LINEAGE).write_text(json.dumps(asdict(self), indent=2) + "\n")


def read_lineage(bundle: Path) -> Lineage | None:
    """The bundle's lineage, or None when it has none (a version not trained by ``research train``)."""
    path = bundle / LINEAGE
    if not path.is_file():
        return None
    try:
        fields = json.loads(path.read_text())
        fields["parent"] = ParentRef(**fields["parent"])
        fields["release"] = ReleaseRef(**fields["release"])
        return Lineage(**fields)
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleRejected(f"{bundle.name}: {LINEAGE} is malformed ({type(exc).__name__})") from None
