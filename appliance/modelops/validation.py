"""``appliance models validate``: a candidate version against the active one on the held-out set.

Both versions segment every labelled held-out case (see :mod:`appliance.modelops.held_out`); each is
scored against the case's label; the active version's modification protocol decides. The report
(JSON) is signed with the appliance's report key in a DSSE envelope, kept, and audited with its
SHA-256; ``models promote`` reads the newest report of a version.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from appliance.admin.model_registry import ModelRefused, find, trusted_publishers
from appliance.context import Appliance
from appliance.db.tables import ModelValidation
from appliance.modelops.held_out import labelled_cases, series_volume, stored_instance
from appliance.modelops.reports import active_version, keep
from models.bundle import Predictor
from models.seg_labels import label_volume
from models.validation.comparison import CaseScores, aggregate, decide, subgroups
from models.validation.metrics import case_metrics
from models.validation.protocol import read_protocol


def _timed_predict(predictor: Predictor, volume) -> tuple:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    labels = predictor.predict(volume)
    return labels, time.perf_counter() - started


def validate(
    app: Appliance, actor: str, name: str, version: str, device: str | None = None
) -> ModelValidation:
    candidate = find(app, name, version)
    active = active_version(app, name)
    if active is None:
        raise ModelRefused(f"{name} has no active version to validate {version} against")
    if active.version == version:
        raise ModelRefused(f"{name} {version} is the active version: validate a candidate against it")
    protocol = read_protocol(Path(active.path), f"{name} {active.version}")
    cases = labelled_cases(app)
    if not cases:
        raise ModelRefused(
            "no labelled held-out case: hold out studies (`appliance holdout add`) and import their "
            "reference SEGs (`appliance holdout labels import`), or review their AI results"
        )
    trusted = trusted_publishers(app)
    ours = Predictor(Path(candidate.path), trusted, device)
    theirs = Predictor(Path(active.path), trusted, device)
    classes = {segment.number: segment.label for segment in theirs.segments}
    scores = []
    for case in cases:
        volume = series_volume(app, case.series_uid)
        reference = label_volume(stored_instance(app, case.seg_uid), volume)
        predicted, ours_seconds = _timed_predict(ours, volume)
        baseline, theirs_seconds = _timed_predict(theirs, volume)
        scores.append(
            CaseScores(
                case.series_uid,
                case.study_uid,
                {"modality": case.modality},
                case.label_source,
                case_metrics(predicted, reference, classes, volume.spacing, protocol.tolerance_mm),
                case_metrics(baseline, reference, classes, volume.spacing, protocol.tolerance_mm),
                {"candidate": round(ours_seconds, 3), "active": round(theirs_seconds, 3)},
            )
        )
    table = aggregate(scores, protocol)
    criteria = decide(scores, protocol, table)
    passed = all(c.passed for c in criteria)
    report = {
        "model": name,
        "candidate": version,
        "active": active.version,
        "candidate_release": candidate.release,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "appliance": app.settings.audit.origin,
        "device": str(ours.device),
        "protocol": protocol.as_dict(),
        "cases": [asdict(s) for s in scores],
        "aggregate": table,
        "subgroups": subgroups(scores),
        "criteria": [asdict(c) for c in criteria],
        "passed": passed,
    }
    row = ModelValidation(
        name=name,
        version=version,
        baseline=active.version,
        passed=passed,
        cases=len(scores),
        failed_criteria=[c.name for c in criteria if not c.passed],
        envelope=b"",
        digest="",
    )
    outcome = "passed" if passed else "failed " + ", ".join(row.failed_criteria)
    return keep(
        app, actor, report, row, "Model Validation",
        f"{name} {version} validated against {active.version} on {len(scores)} held-out cases: {outcome}",
    )  # fmt: skip
