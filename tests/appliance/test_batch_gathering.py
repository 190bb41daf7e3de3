"""The inference process gathers a batch only of series for the same model, and keeps whatever it
took that could not join (a series for another model, an answer, the reader's end) to handle next."""

from __future__ import annotations

import queue
from types import SimpleNamespace

from appliance.pipeline.inference.messages import Unrouted
from appliance.pipeline.inference.process import _Prepared, batch_of


def _prepared(job: int, predictor: object) -> _Prepared:
    series = SimpleNamespace(predictor=predictor, shadow=None)
    return _Prepared(job, series, "bundle", 60.0)  # type: ignore[arg-type]


def _handler(wait: float = 0.0) -> SimpleNamespace:
    inference = SimpleNamespace(batch_wait_seconds=wait)
    return SimpleNamespace(app=SimpleNamespace(settings=SimpleNamespace(inference=inference)), preparing=0)


def test_a_batch_takes_the_same_models_series_and_keeps_what_cannot_join() -> None:
    model, other = object(), object()
    first = _prepared(1, model)
    for stopper in (None, Unrouted(4, "no rule"), _prepared(4, other)):
        ready: queue.Queue = queue.Queue()
        for item in (_prepared(2, model), _prepared(3, model), stopper, _prepared(5, model)):
            ready.put(item)
        group, held = batch_of(first, ready, _handler(), size=4)
        assert [p.job for p in group] == [1, 2, 3] and held == [stopper]  # the reader's end kept too
        assert ready.qsize() == 1  # what follows waits its turn


def test_a_full_batch_takes_no_more() -> None:
    model = object()
    ready: queue.Queue = queue.Queue()
    for job in (2, 3, 4):
        ready.put(_prepared(job, model))
    group, held = batch_of(_prepared(1, model), ready, _handler(), size=2)
    assert [p.job for p in group] == [1, 2] and held == [] and ready.qsize() == 2
