"""A candidate against the active version, case by case, decided by the protocol.

For each class and metric the paired difference (candidate minus active, signed so that positive is
better) has a bootstrap interval; the candidate is non-inferior when the interval's lower bound lies
above minus the margin. It passes when every such criterion holds, there are at least the protocol's
minimum cases, and each required subgroup has its minimum cases. Every failed criterion is named.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from models.validation.bootstrap import mean_difference_interval
from models.validation.metrics import DIRECTIONS
from models.validation.protocol import Protocol


@dataclass(frozen=True)
class CaseScores:
    series_uid: str
    study_uid: str
    subgroup: dict[str, str]  # e.g. {"modality": "CT"}
    label_source: str  # reference, corrected or accepted
    candidate: dict[str, dict[str, float]]  # class -> metric -> value
    baseline: dict[str, dict[str, float]]
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Criterion:
    name: str
    passed: bool
    detail: str


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def aggregate(cases: list[CaseScores], protocol: Protocol) -> dict[str, dict[str, dict]]:
    """class -> metric -> candidate and active means, the difference's interval and the margin."""
    classes = sorted({name for case in cases for name in case.candidate})
    table: dict[str, dict[str, dict]] = {}
    for name in classes:
        table[name] = {}
        for metric in protocol.margins:
            ours = [case.candidate[name][metric] for case in cases]
            theirs = [case.baseline[name][metric] for case in cases]
            sign = DIRECTIONS[metric]
            interval = mean_difference_interval(
                [sign * (a - b) for a, b in zip(ours, theirs, strict=True)],
                protocol.resamples,
                protocol.confidence,
                protocol.seed,
            )
            table[name][metric] = {
                "candidate": _mean(ours),
                "baseline": _mean(theirs),
                "improvement": {"mean": interval.mean, "low": interval.low, "high": interval.high},
                "margin": protocol.margin(name, metric),
            }
    return table


def subgroups(cases: list[CaseScores]) -> dict[str, dict[str, dict]]:
    """attribute -> value -> the number of cases and each class's mean Dice for both versions."""
    groups: dict[str, dict[str, list[CaseScores]]] = defaultdict(lambda: defaultdict(list))
    for case in cases:
        for attribute, value in case.subgroup.items():
            groups[attribute][value].append(case)
    return {
        attribute: {
            value: {
                "cases": len(members),
                "dice": {
                    name: {
                        "candidate": _mean([c.candidate[name]["dice"] for c in members]),
                        "baseline": _mean([c.baseline[name]["dice"] for c in members]),
                    }
                    for name in sorted(members[0].candidate)
                },
            }
            for value, members in sorted(values.items())
        }
        for attribute, values in sorted(groups.items())
    }


def decide(cases: list[CaseScores], protocol: Protocol, table: dict[str, dict[str, dict]]) -> list[Criterion]:
    criteria = [
        Criterion(
            "minimum cases",
            len(cases) >= protocol.min_cases,
            f"{len(cases)} labelled held-out cases (the protocol asks for {protocol.min_cases})",
        )
    ]
    for attribute, wanted in sorted(protocol.subgroups.items()):
        for value in wanted:
            count = sum(1 for case in cases if case.subgroup.get(attribute) == value)
            criteria.append(
                Criterion(
                    f"subgroup {attribute}={value}",
                    count >= protocol.min_subgroup_cases,
                    f"{count} cases (the protocol asks for {protocol.min_subgroup_cases})",
                )
            )
    for name, metrics in sorted(table.items()):
        for metric, row in sorted(metrics.items()):
            low, margin = row["improvement"]["low"], row["margin"]
            passed = bool(np.isfinite(low)) and low > -margin
            unit = " mm" if metric == "hd95" else ""
            mean, high = row["improvement"]["mean"], row["improvement"]["high"]
            detail = (
                f"candidate {row['candidate']:.4f}{unit} vs active {row['baseline']:.4f}{unit}; "
                f"improvement {mean:+.4f}{unit}, {protocol.confidence:.0%} interval "
                f"[{low:+.4f}, {high:+.4f}]{unit}; must stay above -{margin:g}{unit}"
            )
            criteria.append(Criterion(f"{name} {metric} non-inferior", passed, detail))
    return criteria
