"""The model registry: signed MONAI bundles imported into the home, staged, active or retired.

Only a bundle whose manifest is signed by a trusted publisher and whose every file matches is
imported; it is copied into ``models/<name>/<version>/`` and verified again there. One version
per name is active. Every import (or refusal), activation, retirement and new trusted publisher
is audited.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlmodel import select

import models
from appliance.context import Appliance
from appliance.db.tables import Model, ModelState, utcnow
from appliance.errors import ApplianceError, NotFound
from appliance.modelops.lineage import LineageRefused, check_lineage
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject
from models.errors import BundleRejected
from models.lineage import read_lineage
from models.manifest import verify_bundle

TRUSTED_PUBLISHERS = "trusted-publishers"
MODELS = "models"
DEMO_DIRECTORY = Path(models.__file__).resolve().parent / "demo"
DEMO_PUBLISHER = "demo-publisher"
DEMO_MODEL = "lesion_ct_segmentation"


class ModelRefused(ApplianceError):
    """A bundle failed verification or conflicts with one already imported."""


def audit_model(
    app: Appliance, actor: str, what: str, text: str, event_id: EventID = EventID.APPLICATION_ACTIVITY,
    action: Action = Action.UPDATE, outcome: Outcome = Outcome.SUCCESS, type_code: str = "Model Registry",
) -> None:  # fmt: skip
    """One audit event about a model version (``what``: "NAME VERSION") and what an actor did to it."""
    app.audit.emit(
        AuditEvent(
            event_id=event_id,
            action=action,
            outcome=outcome,
            type_code=type_code,
            participants=(Participant(actor, is_requestor=True),),
            objects=(ParticipantObject("model", what),),
            description=text,
        )
    )


def audit_refusal(app: Appliance, actor: str, what: str, text: str) -> None:
    """A refused change of the registry (an import, a promotion), on disk before the refusal is told."""
    audit_model(app, actor, what, text, outcome=Outcome.MINOR_FAILURE)
    app.audit.flush()


OWN_PUBLISHER = "this-appliance"  # the publisher of versions this appliance derives (models optimize)


def trusted_publishers(app: Appliance) -> dict[str, Ed25519PublicKey]:
    """The publishers an admin trusted, and this appliance itself (its signing key)."""
    keys = {}
    if app.signing_public_key_path.is_file():
        own = load_pem_public_key(app.signing_public_key_path.read_bytes())
        if isinstance(own, Ed25519PublicKey):
            keys[OWN_PUBLISHER] = own
    for path in sorted((app.settings.home / TRUSTED_PUBLISHERS).glob("*.pub")):
        key = load_pem_public_key(path.read_bytes())
        if isinstance(key, Ed25519PublicKey) and path.stem != OWN_PUBLISHER:
            keys[path.stem] = key
    return keys


def trust_publisher(app: Appliance, actor: str, name: str, public_key_file: Path) -> None:
    if name == OWN_PUBLISHER:
        raise ModelRefused(f"{OWN_PUBLISHER} names this appliance's own key; choose another publisher name")
    try:
        key = load_pem_public_key(public_key_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise ModelRefused(f"{public_key_file} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ModelRefused(f"{public_key_file} is not an Ed25519 key; publishers sign with Ed25519")
    directory = app.settings.home / TRUSTED_PUBLISHERS
    directory.mkdir(mode=0o700, exist_ok=True)
    shutil.copyfile(public_key_file, directory / f"{name}.pub")
    audit_model(app, actor, name, "model publisher trusted", EventID.SECURITY_ALERT, Action.CREATE)


def _claimed(source: Path) -> str:
    """The name and the version a refused bundle claims, for its audit entry (nothing verified)."""
    try:
        version = json.loads((source / "configs" / "metadata.json").read_text()).get("version", "?")
    except (OSError, ValueError, AttributeError):
        version = "?"
    return f"{source.name} {version}"


def import_bundle(app: Appliance, actor: str, source: Path, require_lineage: bool = False) -> Model:
    """Verify and copy a signed bundle into the home (staged). A bundle with a lineage (trained by
    ``research train``) is imported only if its training release passes
    :func:`appliance.modelops.lineage.check_lineage`; ``require_lineage`` refuses one without."""
    trusted = trusted_publishers(app)
    release = None
    try:
        manifest = verify_bundle(source, trusted)
        lineage = read_lineage(source)
        if lineage is None and require_lineage:
            raise ModelRefused(f"{source.name}: a candidate from the workspace must carry its lineage")
        if lineage is not None:
            checked = check_lineage(app, lineage)
            release = f"{checked.name} v{checked.version}"
        destination = app.settings.home / MODELS / manifest.name / manifest.version
        if destination.exists():
            raise ModelRefused(f"{manifest.name} {manifest.version} is already imported")
        staging = destination.with_name(f".importing-{manifest.version}")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        verify_bundle(staging, trusted)  # what is kept is what was verified
        staging.rename(destination)
    except (BundleRejected, ModelRefused, LineageRefused) as exc:
        audit_model(
            app, actor, _claimed(source), str(exc), EventID.IMPORT, Action.CREATE, Outcome.MINOR_FAILURE
        )
        raise ModelRefused(str(exc)) from exc
    model = Model(
        name=manifest.name,
        version=manifest.version,
        publisher=manifest.publisher,
        path=str(destination),
        release=release,
    )
    with app.session() as session:
        session.add(model)
        session.commit()
    audit_model(app, actor, f"{model.name} {model.version}", "staged", EventID.IMPORT, Action.CREATE)
    return model


def _find(session, name: str, version: str) -> Model:  # type: ignore[no-untyped-def]
    model = session.exec(select(Model).where(Model.name == name, Model.version == version)).first()
    if model is None:
        raise NotFound(f"no model {name} {version}; see 'appliance models list'")
    return model


def _set_state(app: Appliance, actor: str, name: str, version: str, state: ModelState) -> Model:
    with app.session() as session:
        model = _find(session, name, version)
        if state == ModelState.ACTIVE:
            if model.state == ModelState.RETIRED:
                raise ModelRefused(f"{name} {version} is retired; import a new version instead")
            active = select(Model).where(Model.name == name, Model.state == ModelState.ACTIVE)
            for other in session.exec(active).all():  # one active version per name
                other.state, other.changed_at = ModelState.STAGED, utcnow()
                session.add(other)
        model.state, model.changed_at = state, utcnow()
        if state == ModelState.ACTIVE:
            model.activated_at = model.changed_at
        session.add(model)
        session.commit()
    done = "activated" if state == ModelState.ACTIVE else state.value
    audit_model(app, actor, f"{name} {version}", done)
    return model


def find(app: Appliance, name: str, version: str) -> Model:
    """The registry's row for this version; NotFound names the command that lists them."""
    with app.session() as session:
        return _find(session, name, version)


def activate(app: Appliance, actor: str, name: str, version: str) -> Model:
    return _set_state(app, actor, name, version, ModelState.ACTIVE)


def retire(app: Appliance, actor: str, name: str, version: str) -> Model:
    return _set_state(app, actor, name, version, ModelState.RETIRED)


def list_models(app: Appliance) -> list[Model]:
    with app.session() as session:
        return list(session.exec(select(Model).order_by(Model.name, Model.imported_at)).all())


def install_demo_model(app: Appliance, actor: str) -> Model:
    """Trust the demo publisher and make the bundled demo model the active one (``appliance init``)."""
    trust_publisher(app, actor, DEMO_PUBLISHER, DEMO_DIRECTORY / f"{DEMO_PUBLISHER}.pub")
    model = import_bundle(app, actor, DEMO_DIRECTORY / DEMO_MODEL)
    return activate(app, actor, model.name, model.version)
