"""``appliance models promote`` and ``rollback``: which version of a model runs.

A version is promoted only when its newest validation report, made against the version active now,
passed; an admin may override a missing or failed report with a reason, which is audited as a
Security Alert. The first version of a model ever to run has nothing to be compared with and is
promoted without a report. The switch is one transaction (the old version staged, the new one
active): a series already prepared finishes on the version it was prepared with; the next one runs
the new version. ``rollback`` returns to the version active before the current one.
"""

from __future__ import annotations

from sqlmodel import select

from appliance.admin import model_registry as registry
from appliance.admin.model_registry import ModelRefused
from appliance.context import Appliance
from appliance.db.tables import Model, ModelState
from appliance.modelops import shadow
from appliance.modelops.reports import active_version, reports
from audit.events import EventID, Outcome


def _ever_active(app: Appliance, name: str) -> bool:
    with app.session() as session:
        return (
            session.exec(select(Model).where(Model.name == name, Model.activated_at.is_not(None))).first()
            is not None
        )  # type: ignore[union-attr]


def _gate(app: Appliance, name: str, version: str, active: Model | None) -> str | None:
    """Why the version may not be promoted, or None when it may."""
    if not _ever_active(app, name):
        return None
    if active is None:
        return f"no version of {name} is active to validate {version} against (roll back first)"
    against = [r for r in reports(app, name, version) if r.baseline == active.version]
    if not against:
        return (
            f"{name} {version} has no validation against the active version {active.version}: "
            f"run `appliance models validate {name} {version}`"
        )
    if not against[0].passed:
        return (
            f"{name} {version} failed its validation against {active.version} (report {against[0].id}: "
            f"{', '.join(against[0].failed_criteria)})"
        )
    return None


def promote(app: Appliance, actor: str, name: str, version: str, override_reason: str | None = None) -> Model:
    if registry.find(app, name, version).state == ModelState.RETIRED:
        raise ModelRefused(f"{name} {version} is retired; import a new version instead")
    active = active_version(app, name)
    if active is not None and active.version == version:
        raise ModelRefused(f"{name} {version} is already the active version")
    refusal = _gate(app, name, version, active)
    if refusal is not None and not (override_reason or "").strip():
        registry.audit_refusal(app, actor, f"{name} {version}", f"promotion refused: {refusal}")
        raise ModelRefused(f"{refusal}; an admin may override with --override-reason TEXT")
    model = registry.activate(app, actor, name, version)
    shadow.end(app, name, version)  # it is the active version now: nothing to run beside
    if refusal is not None:
        registry.audit_model(
            app, actor, f"{name} {version}",
            f"promoted without a passing validation ({refusal}); reason: {override_reason}",
            EventID.SECURITY_ALERT, outcome=Outcome.SERIOUS_FAILURE, type_code="Model Promotion Override",
        )  # fmt: skip
    app.audit.flush()
    return model


def rollback(app: Appliance, actor: str, name: str) -> Model:
    """Make active again the version that was active before the current one."""
    active = active_version(app, name)
    with app.session() as session:
        query = select(Model).where(
            Model.name == name,
            Model.state == ModelState.STAGED,
            Model.activated_at.is_not(None),  # type: ignore[union-attr]
        )
        earlier = [m for m in session.exec(query).all() if active is None or m.id != active.id]
    if not earlier:
        raise ModelRefused(f"{name} has no earlier version to roll back to")
    previous = max(earlier, key=lambda m: m.activated_at)  # type: ignore[arg-type,return-value]
    model = registry.activate(app, actor, name, previous.version)
    registry.audit_model(
        app, actor, f"{name} {previous.version}",
        f"{name} rolled back from {active.version if active else '-'} to {previous.version}",
        type_code="Model Rollback",
    )  # fmt: skip
    app.audit.flush()
    return model
