"""``appliance models shadow`` and ``shadow-report``: a candidate version beside the active one.

While a shadow run is in force, every series routed to the model is also run by the candidate in
the inference process (:func:`models.pipeline.finish_series`); the active version's results are
stored and sent as always; the candidate's labels are only measured against them: Dice agreement
per class, its volumes, its seconds against the active version's, or why it failed. Its SEG is not
kept, so no viewer, query or send can show an unvalidated model's result. A run ends after its
number of series, at its time limit, when stopped, or when its version is promoted.
"""

from __future__ import annotations

import statistics
from datetime import timedelta

from sqlalchemy import func
from sqlmodel import select

from appliance.admin.model_registry import ModelRefused, audit_model, find
from appliance.context import Appliance
from appliance.db.tables import ModelState, ShadowResult, ShadowRun, utcnow
from appliance.errors import NotFound
from models.shadow_outcome import ShadowOutcome


def _audit(app: Appliance, actor: str, name: str, version: str, text: str) -> None:
    audit_model(app, actor, f"{name} {version}", text, type_code="Model Shadow")
    app.audit.flush()


def _open_run(session, name: str) -> ShadowRun | None:  # type: ignore[no-untyped-def]
    query = select(ShadowRun).where(ShadowRun.name == name, ShadowRun.ended_at.is_(None))  # type: ignore[union-attr]
    return session.exec(query).first()


def start(
    app: Appliance, actor: str, name: str, version: str, series: int | None, hours: float | None
) -> ShadowRun:
    model = find(app, name, version)
    if model.state != ModelState.STAGED:
        raise ModelRefused(f"{name} {version} is {model.state.value}: only a staged version runs in shadow")
    if series is not None and series < 1 or hours is not None and hours <= 0:
        raise ModelRefused("give --series 1 or more and --hours above 0")
    with app.session() as session:
        if (running := _open_run(session, name)) is not None:
            raise ModelRefused(
                f"{name} {running.version} is in shadow already: `appliance models shadow-stop {name}` first"
            )
        until = utcnow() + timedelta(hours=hours) if hours is not None else None
        run = ShadowRun(name=name, version=version, started_by=actor, until=until, max_series=series)
        session.add(run)
        session.commit()
        session.refresh(run)
    limits = [text for value, text in ((series, f"{series} series"), (hours, f"{hours} hours")) if value]
    _audit(app, actor, name, version, "shadow started" + (f" for {' or '.join(limits)}" if limits else ""))
    return run


def end(app: Appliance, name: str, version: str | None = None) -> ShadowRun | None:
    """End the open shadow run of ``name`` (only if it runs ``version``, when given)."""
    with app.session() as session:
        run = _open_run(session, name)
        if run is None or version is not None and run.version != version:
            return None
        run.ended_at = utcnow()
        session.add(run)
        session.commit()
        session.refresh(run)
    return run


def stop(app: Appliance, actor: str, name: str) -> ShadowRun:
    run = end(app, name)
    if run is None:
        raise NotFound(f"no version of {name} is running in shadow")
    _audit(app, actor, name, run.version, "shadow stopped")
    return run


def in_force(app: Appliance, name: str) -> ShadowRun | None:
    """The shadow run the next series of ``name`` should also go through, if any."""
    with app.session() as session:
        run = _open_run(session, name)
        if run is None or run.until is not None and run.until <= utcnow():
            return None
        if run.max_series is not None:
            done = session.exec(select(func.count()).where(ShadowResult.run_pk == run.id)).one()
            if done >= run.max_series:
                return None
        return run


def record(app: Appliance, run_pk: int, job_pk: int, series_uid: str, active_version: str,
           outcome: ShadowOutcome) -> str:  # fmt: skip
    """Keep what the shadow version did on one series; a line for the job's outcome."""
    with app.session() as session:
        session.add(
            ShadowResult(
                run_pk=run_pk,
                job_pk=job_pk,
                series_uid=series_uid,
                active_version=active_version,
                agreement=outcome.agreement,
                volumes_ml=outcome.volumes_ml,
                seconds=outcome.seconds,
                active_seconds=outcome.active_seconds,
                failure=outcome.failure,
            )  # fmt: skip
        )
        session.commit()
    who = f"shadow {outcome.model.name} {outcome.model.version}"
    if outcome.failure:
        return f"{who} failed: {outcome.failure}"
    agreement = ", ".join(f"{label} {dice:.3f}" for label, dice in outcome.agreement.items())
    return f"{who}: agreement {agreement}"


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def report(app: Appliance, name: str, version: str) -> dict:
    """Agreement, failures and latency of a version's shadow runs, against the active version."""
    with app.session() as session:
        runs = session.exec(
            select(ShadowRun)
            .where(ShadowRun.name == name, ShadowRun.version == version)
            .order_by(ShadowRun.id)
        ).all()
        if not runs:
            raise NotFound(
                f"{name} {version} never ran in shadow: `appliance models shadow {name} {version}`"
            )
        ids = [run.id for run in runs]
        results = session.exec(select(ShadowResult).where(ShadowResult.run_pk.in_(ids))).all()  # type: ignore[union-attr]
    ran = [r for r in results if r.failure is None]
    labels = sorted({label for r in ran for label in r.agreement})
    agreement = {}
    for label in labels:
        values = [r.agreement[label] for r in ran if label in r.agreement]
        agreement[label] = {
            "mean": round(statistics.fmean(values), 4),
            "min": round(min(values), 4),
            "median": round(statistics.median(values), 4),
        }
    seconds = _median([r.seconds for r in ran if r.seconds is not None])
    active_seconds = _median([r.active_seconds for r in ran if r.active_seconds is not None])
    return {
        "model": name,
        "version": version,
        "runs": [
            {
                "started_at": run.started_at.isoformat(timespec="seconds"),
                "started_by": run.started_by,
                "until": run.until.isoformat(timespec="seconds") if run.until else None,
                "max_series": run.max_series,
                "ended_at": run.ended_at.isoformat(timespec="seconds") if run.ended_at else None,
            }
            for run in runs
        ],
        "series": len(results),
        "failures": [{"series": r.series_uid, "reason": r.failure} for r in results if r.failure],
        "against": sorted({r.active_version for r in results}),
        "agreement": agreement,
        "seconds": {"shadow_median": seconds, "active_median": active_seconds},
        "latency_ratio": round(seconds / active_seconds, 3) if seconds and active_seconds else None,
    }


def readable(found: dict) -> str:
    lines = [
        f"{found['model']} {found['version']} in shadow: {found['series']} series beside "
        f"{', '.join(found['against']) or '-'}, {len(found['failures'])} failed",
    ]
    for label, values in found["agreement"].items():
        lines.append(
            f"  {label}: agreement (Dice with the active version) mean {values['mean']:.4f}, "
            f"median {values['median']:.4f}, min {values['min']:.4f}"
        )
    timing = found["seconds"]
    if timing["shadow_median"] is not None:
        lines.append(
            f"  seconds per series (network and postprocessing, median): shadow {timing['shadow_median']}, "
            f"active {timing['active_median']} (ratio {found['latency_ratio']})"
        )
    lines += [f"  failed on {f['series']}: {f['reason']}" for f in found["failures"]]
    return "\n".join(lines)
