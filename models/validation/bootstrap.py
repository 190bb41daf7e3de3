"""Paired bootstrap confidence intervals of the mean difference between two models' per-case scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


def mean_difference_interval(
    differences: list[float], resamples: int, confidence: float, seed: int
) -> Interval:
    """The mean of ``differences`` (one per case) and its percentile bootstrap interval: the cases
    are resampled with replacement ``resamples`` times with a fixed seed, so a report reproduces."""
    values = np.asarray(differences, dtype=np.float64)
    if values.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(resamples, values.size))
    means = values[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(values.mean()), float(low), float(high))
