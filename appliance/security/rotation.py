"""KEK rotation: a new KEK becomes active and every wrapped data key is re-wrapped under it.

Object files are not rewritten: only the wrapped keys in the index (and the wrapped secrets)
change. Afterwards the old KEK wraps nothing and can be retired.
"""

from __future__ import annotations

from sqlmodel import select

from appliance.context import Appliance, rewrap_secrets
from appliance.db.tables import Instance, WrappedSecret
from appliance.errors import KeyMaterialError
from appliance.security.keys import DirectoryKeySource, key_source
from appliance.storage.writer import rewrap_object_keys
from audit.events import Action, AuditEvent, EventID, Outcome, Participant, ParticipantObject


def rewrap_all(app: Appliance) -> int:
    """Re-wrap every data key not under the active KEK; return how many changed."""
    keyring = app.keyring
    keyring.refresh()
    changed = 0
    with app.session() as session:
        changed += rewrap_secrets(session, keyring)
        session.commit()
    return changed + rewrap_object_keys(app, keyring)


def keys_in_use(app: Appliance) -> dict[str, int]:
    with app.session() as session:
        counts: dict[str, int] = {}
        for kid in session.exec(select(Instance.kek_id)).all():
            counts[kid] = counts.get(kid, 0) + 1
        for row in session.exec(select(WrappedSecret)).all():
            counts[row.kek_id] = counts.get(row.kek_id, 0) + 1
    return counts


def _audit(app: Appliance, actor: str, description: str, kid: str) -> None:
    app.audit.emit(
        AuditEvent(
            event_id=EventID.SECURITY_ALERT,
            action=Action.UPDATE,
            outcome=Outcome.SUCCESS,
            type_code="Key Management",
            participants=(Participant(actor, is_requestor=True),),
            objects=(ParticipantObject("key-encryption-key", kid),),
            description=description,
        )
    )


def _directory_source(app: Appliance) -> DirectoryKeySource:
    source = key_source(app.settings)
    if not isinstance(source, DirectoryKeySource):
        raise KeyMaterialError(
            "keys.source is 'env': set the new KEK in $APPLIANCE_KEK and the old one in "
            "$APPLIANCE_KEK_PREVIOUS, then run 'appliance keys rewrap'"
        )
    return source


def rotate(app: Appliance, actor: str) -> tuple[str, int]:
    """Create a new active KEK (directory source) and re-wrap everything under it."""
    new_id = _directory_source(app).create()
    changed = rewrap_all(app)
    _audit(app, actor, f"KEK rotated; {changed} data keys re-wrapped", new_id)
    return new_id, changed


def retire(app: Appliance, actor: str, kid: str) -> None:
    app.keyring.refresh()
    if kid == app.keyring.active_id:
        raise KeyMaterialError(f"KEK {kid} is active; rotate first, then retire it")
    in_use = keys_in_use(app).get(kid, 0)
    if in_use:
        raise KeyMaterialError(f"KEK {kid} still wraps {in_use} data keys; run 'appliance keys rewrap' first")
    _directory_source(app).retire(kid)
    _audit(app, actor, "KEK retired", kid)
