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

from pydicom.dataset import Dataset

from models.bundle import ModelIdentity, Predictor
from models.errors import ModelError
from models.results import write_results
from models.routing import RoutingRule, SeriesFacts, route
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
class PreparedSeries:
    """A series ready for the network: routed, its volume's geometry kept, its voxels preprocessed."""

    rule: RoutingRule
    why: str  # which rule matched, e.g. "rule 1 (lesion_ct_segmentation)"
    predictor: Predictor
    volume: Volume  # without voxels: the geometry and the source frames the SEG references
    data: dict  # the bundle's preprocessed items
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SeriesResults:
    model: ModelIdentity
    why: str
    segmentation: Dataset
    report: Dataset
    volumes_ml: dict[str, float]  # segment label -> volume
    timings: dict[str, float]  # seconds per stage


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


def prepare_series(
    source: SeriesSource,
    rules: Sequence[RoutingRule],
    predictor_for: Callable[[str], Predictor],
    timings: dict[str, float] | None = None,
) -> PreparedSeries | Unrouted:
    """Route the series and preprocess its volume for the rule's model (``predictor_for(name)``)."""
    clock = _Clock({} if timings is None else timings)
    rule, why = route(list(rules), series_facts(source.headers))
    if rule is None:
        return Unrouted(why)
    predictor = predictor_for(rule.model)
    clock.lap("route")
    volume = build_volume(source.headers, rule.min_slices, load_pixels=source.whole)
    clock.lap("volume")
    inputs = predictor.inputs(volume)
    volume = volume.without_voxels()  # the voxels are in inputs only: freed once resampled
    data = predictor.preprocess(inputs)
    clock.lap("preprocessing")
    return PreparedSeries(rule, why, predictor, volume, data, clock.laps)


def finish_series(prepared: PreparedSeries) -> SeriesResults:
    """Run the network on a prepared series and write its SEG and SR."""
    timings = dict(prepared.timings)
    predictor = prepared.predictor
    labels = predictor.infer(prepared.data, prepared.volume.array.shape, timings)
    started = time.perf_counter()
    results = write_results(prepared.volume, labels, predictor.segments, predictor.identity)
    timings["results"] = time.perf_counter() - started
    return SeriesResults(
        predictor.identity, prepared.why, results.segmentation, results.report, results.volumes_ml, timings
    )


def run_series(
    source: SeriesSource, rules: Sequence[RoutingRule], predictor_for: Callable[[str], Predictor]
) -> SeriesResults | Unrouted:
    """Both steps at once."""
    prepared = prepare_series(source, rules, predictor_for)
    return prepared if isinstance(prepared, Unrouted) else finish_series(prepared)
