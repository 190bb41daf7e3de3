"""A series in, results out: route it, build its volume, run the bundle, write SEG and SR.

The caller hands in the series' headers with a loader of each whole object (:class:`SeriesSource`)
and a way to get the predictor of a rule's model; nothing here knows of a database, a store or a
process. Two steps, so that a caller can prepare the next series (CPU work) while the network runs
on this one: :func:`prepare_series`, then :func:`finish_series`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from pydicom.dataset import Dataset

from models.bundle import BatchedSeries, Predictor
from models.errors import ModelError
from models.identity import ModelIdentity
from models.results import write_results
from models.routing import RoutingRule, SeriesFacts, route
from models.shadow_outcome import ShadowOutcome
from models.validation.metrics import label_agreement
from models.volume import Volume, build_volume


class SeriesSource(Protocol):
    """A series' headers (read without pixel data), and each whole object on request."""

    headers: Sequence[Dataset]

    def whole(self, header: Dataset) -> Dataset: ...


@dataclass(frozen=True)
class Unrouted:
    """No rule matched; ``reason`` says why each did not."""

    reason: str


@dataclass
class ShadowPrepared:
    """The series preprocessed for a shadow version too (or why it could not be)."""

    predictor: Predictor
    data: dict
    failure: str | None = None


@dataclass
class PreparedSeries:
    """A series ready for the network: routed, its volume's geometry kept, its voxels preprocessed."""

    rule: RoutingRule
    why: str  # which rule matched, e.g. "rule 1 (lesion_ct_segmentation)"
    predictor: Predictor
    volume: Volume  # without voxels: the geometry and the source frames the SEG references
    data: dict  # the bundle's preprocessed items
    timings: dict[str, float] = field(default_factory=dict)
    shadow: ShadowPrepared | None = None


@dataclass(frozen=True)
class SeriesResults:
    model: ModelIdentity
    why: str
    segmentation: Dataset
    report: Dataset
    volumes_ml: dict[str, float]  # segment label -> volume
    timings: dict[str, float]  # seconds per stage
    shadow: ShadowOutcome | None = None


class _Clock:
    def __init__(self, laps: dict[str, float]) -> None:
        self.laps = laps
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = now - self._last
        self._last = now


def series_facts(headers: Sequence[Dataset]) -> SeriesFacts:
    """What routing looks at, from the first header (and the frame count of all)."""
    if not headers:
        raise ModelError("the series has no stored instances")
    first = headers[0]
    return SeriesFacts(
        modality=str(first.get("Modality", "")),
        body_part=str(first.get("BodyPartExamined", "")),
        series_description=str(first.get("SeriesDescription", "")),
        sop_class_uid=str(first.get("SOPClassUID", "")),
        slices=sum(int(ds.get("NumberOfFrames", 1) or 1) for ds in headers),
    )


def _failure(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _prepare_shadow(shadow: Predictor, volume: Volume) -> ShadowPrepared:
    try:
        return ShadowPrepared(shadow, shadow.preprocess(shadow.inputs(volume)))
    except Exception as exc:  # a shadow's failure is its own: the active version's results still come
        return ShadowPrepared(shadow, {}, _failure(exc))


def prepare_series(
    source: SeriesSource,
    rules: Sequence[RoutingRule],
    predictor_for: Callable[[str], Predictor],
    timings: dict[str, float] | None = None,
    shadow_for: Callable[[str], Predictor | None] | None = None,
) -> PreparedSeries | Unrouted:
    """Route the series and preprocess its volume for the rule's model (``predictor_for(name)``),
    and for the version running in shadow beside it, if ``shadow_for(name)`` gives one."""
    clock = _Clock({} if timings is None else timings)
    rule, why = route(list(rules), series_facts(source.headers))
    if rule is None:
        return Unrouted(why)
    predictor = predictor_for(rule.model)
    shadow = shadow_for(rule.model) if shadow_for is not None else None
    clock.lap("route")
    volume = build_volume(source.headers, rule.min_slices, load_pixels=source.whole)
    clock.lap("volume")
    shadowed = _prepare_shadow(shadow, volume) if shadow is not None else None
    inputs = predictor.inputs(volume)
    volume = volume.without_voxels()  # the voxels are in inputs only: freed once resampled
    data = predictor.preprocess(inputs)
    clock.lap("preprocessing")
    return PreparedSeries(rule, why, predictor, volume, data, clock.laps, shadowed)


def _run_shadow(prepared: PreparedSeries, labels: np.ndarray, active_seconds: float) -> ShadowOutcome:
    shadow = prepared.shadow
    assert shadow is not None
    failure = shadow.failure
    if failure is None:
        started = time.perf_counter()
        try:
            theirs = shadow.predictor.infer(shadow.data, prepared.volume.array.shape)
        except Exception as exc:  # reported on the shadow, never on the active version's job
            failure = _failure(exc)
        else:
            seconds = time.perf_counter() - started
            classes = {segment.number: segment.label for segment in prepared.predictor.segments}
            voxel_ml = prepared.volume.voxel_volume_ml
            volumes = {label: float((theirs == number).sum()) * voxel_ml for number, label in classes.items()}
            return ShadowOutcome(
                shadow.predictor.identity, label_agreement(labels, theirs, classes), volumes, seconds,
                active_seconds,
            )  # fmt: skip
    return ShadowOutcome(shadow.predictor.identity, {}, {}, None, active_seconds, failure)


def finish_series(prepared: PreparedSeries) -> SeriesResults:
    """Run the network on a prepared series and write its SEG and SR; then the shadow version's
    network, whose labels are only compared with these."""
    timings = dict(prepared.timings)
    labels = prepared.predictor.infer(prepared.data, prepared.volume.array.shape, timings)
    return _results(prepared, labels, timings)


def finish_together(group: Sequence[PreparedSeries], wait_seconds: float) -> list[SeriesResults | Exception]:
    """Several series prepared for the same model, their windows through the network together
    (dynamic batching, :meth:`Predictor.infer_many`): each one's results, or the exception that
    stopped it, in order."""
    predictor = group[0].predictor
    if any(prepared.predictor is not predictor for prepared in group):
        raise ValueError("series batched together must share their model")
    batched = [BatchedSeries(p.data, p.volume.array.shape, dict(p.timings)) for p in group]
    labels, _ = predictor.infer_many(batched, wait_seconds)
    outcomes: list[SeriesResults | Exception] = []
    for prepared, one, found in zip(group, batched, labels, strict=True):
        if isinstance(found, Exception):
            outcomes.append(found)
            continue
        try:
            outcomes.append(_results(prepared, found, {**one.timings, "batched_with": len(group) - 1}))
        except Exception as exc:  # this series' results: its own failure
            outcomes.append(exc)
    return outcomes


def _results(prepared: PreparedSeries, labels: np.ndarray, timings: dict[str, float]) -> SeriesResults:
    predictor = prepared.predictor
    started = time.perf_counter()
    results = write_results(prepared.volume, labels, predictor.segments, predictor.identity)
    timings["results"] = time.perf_counter() - started
    shadow = None
    if prepared.shadow is not None:
        shadow = _run_shadow(prepared, labels, timings["network"] + timings["postprocessing"])
    return SeriesResults(
        predictor.identity, prepared.why, results.segmentation, results.report, results.volumes_ml, timings,
        shadow,
    )  # fmt: skip


def run_series(
    source: SeriesSource, rules: Sequence[RoutingRule], predictor_for: Callable[[str], Predictor]
) -> SeriesResults | Unrouted:
    """Both steps at once."""
    prepared = prepare_series(source, rules, predictor_for)
    return prepared if isinstance(prepared, Unrouted) else finish_series(prepared)
