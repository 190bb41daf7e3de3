"""``appliance models fetch WORKSPACE``: candidates researchers submitted to the workspace's inbox.

A candidate is ``models/inbox/NAME/VERSION/`` holding a signed bundle (``research submit`` uploads
the signature last, so one without ``manifest.sig`` is still arriving and is left for the next
fetch). Each new candidate is downloaded to a private temporary folder and imported as ``models
import`` does, with its lineage required and checked; a refusal is audited and reported, and the
other candidates are still fetched.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import select

from anonymizer.errors import AnonymizerError
from appliance.admin.model_registry import ModelRefused, import_bundle
from appliance.context import Appliance
from appliance.db.tables import Model
from appliance.research.workspaces import get_workspace, store_of
from models.lineage import INBOX
from models.manifest import SIGNATURE


@dataclass(frozen=True)
class Fetched:
    name: str
    version: str
    outcome: str  # imported, refused, or already imported
    detail: str = ""


def _candidates(keys: list[str]) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for key in keys:
        parts = key[len(INBOX) + 1 :].split("/", 2)
        if len(parts) == 3 and all(parts):
            found.setdefault((parts[0], parts[1]), []).append(parts[2])
    return {k: files for k, files in found.items() if SIGNATURE in files}  # complete ones only


def fetch(app: Appliance, actor: str, workspace_name: str) -> list[Fetched]:
    store = store_of(app, get_workspace(app, workspace_name))
    with app.session() as session:
        known = {(m.name, m.version) for m in session.exec(select(Model)).all()}
    results = []
    for (name, version), files in sorted(_candidates(store.keys(f"{INBOX}/")).items()):
        if (name, version) in known:
            results.append(Fetched(name, version, "already imported"))
            continue
        with tempfile.TemporaryDirectory(prefix="candidate-") as tmp:
            bundle = Path(tmp) / name
            try:
                for relative in files:
                    target = bundle / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(store.get(f"{INBOX}/{name}/{version}/{relative}"))
                import_bundle(app, actor, bundle, require_lineage=True)
            except ModelRefused as exc:
                results.append(Fetched(name, version, "refused", str(exc)))
                continue
            except AnonymizerError as exc:  # the workspace: unreachable, or an object gone meanwhile
                raise ModelRefused(f"workspace {workspace_name}: {exc}") from exc
        results.append(Fetched(name, version, "imported"))
    return results
