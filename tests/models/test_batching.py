"""Dynamic batching: series inferred together give the labels each gets alone, their windows in
shared network calls; a series' failure stays its own; a lone series waits no longer than its budget."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from models.batching import WindowBatcher
from models.bundle import BatchedSeries
from models.volume import build_volume
from testbed.bundles import demo_predictor
from testbed.phantom import make_phantom
from testbed.synthetic import phantom_series
from tests.support.datasets import read_back

SPACING = (1.5, 1.5, 3.0)


@pytest.fixture(scope="module")
def predictor():
    return demo_predictor("cpu")


def _volume(seed: int, shape: tuple[int, int, int]):
    phantom = make_phantom(shape, SPACING, seed=seed, lesion_count=2)
    return build_volume(read_back(phantom_series(phantom.hu, SPACING)), 1)


def test_two_waiting_series_batched_give_the_labels_each_gets_alone(predictor) -> None:
    volumes = [_volume(5, (64, 56, 20)), _volume(9, (72, 60, 24))]
    calls: list[int] = []
    hook = predictor.network.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape[0]))
    try:
        alone = [predictor.predict(volume) for volume in volumes]
        calls_alone, calls[:] = len(calls), []
        series = [BatchedSeries(predictor.prepare(v), v.array.shape) for v in volumes]
        together, batches = predictor.infer_many(series)
    finally:
        hook.remove()
    assert all(labels.any() for labels in alone)  # lesions found: the comparison means something
    for labels, expected in zip(together, alone, strict=True):
        assert isinstance(labels, np.ndarray) and np.array_equal(labels, expected)
    # the windows of both series went through the network in fewer, larger calls
    assert len(calls) == len(batches) < calls_alone
    assert all(one.timings["network"] > 0 for one in series)


def test_a_network_failure_reaches_every_series_of_its_batch_and_no_other() -> None:
    calls: list[int] = []

    def network(windows: torch.Tensor) -> torch.Tensor:
        calls.append(windows.shape[0])
        if (windows < 0).any():
            raise ValueError("negative window")
        return windows * 2

    batcher = WindowBatcher(network, callers=2, wait_seconds=5)
    outcomes: dict[str, object] = {}

    def series(name: str, windows: torch.Tensor) -> None:
        try:
            outcomes[name] = batcher(windows)
        except ValueError as exc:
            outcomes[name] = exc
        finally:
            batcher.leave()

    threads = [
        threading.Thread(target=series, args=("good", torch.ones(3, 1, 4))),
        threading.Thread(target=series, args=("bad", -torch.ones(2, 1, 4))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert calls == [5]  # one call for both
    assert all(isinstance(outcome, ValueError) for outcome in outcomes.values())
    assert torch.equal(batcher(torch.ones(1, 1, 4)), torch.full((1, 1, 4), 2.0))  # the batcher goes on


def test_a_series_whose_partner_is_slow_waits_only_its_budget() -> None:
    batcher = WindowBatcher(lambda windows: windows + 1, callers=2, wait_seconds=0.2)
    started = time.monotonic()
    output = batcher(torch.zeros(2, 3))
    assert 0.15 <= time.monotonic() - started < 2 and torch.equal(output, torch.ones(2, 3))
    batcher.leave()
    started = time.monotonic()
    batcher(torch.zeros(1, 3))  # alone now: no wait at all
    assert time.monotonic() - started < 0.15
