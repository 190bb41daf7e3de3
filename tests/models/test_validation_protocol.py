"""The modification protocol's decisions on known scores, the metrics on known masks, and a
malformed protocol refused in one line that names it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.validation.comparison import CaseScores, aggregate, decide
from models.validation.metrics import case_metrics, label_agreement
from models.validation.protocol import Protocol, ProtocolError, read_protocol

PROTOCOL = Protocol(margins={"dice": 0.05, "hd95": 5.0}, min_cases=3, subgroups={"modality": ["CT", "MR"]})


def _case(n: int, candidate: float, baseline: float, modality: str = "CT", hd95: float = 2.0) -> CaseScores:
    return CaseScores(
        f"series-{n}", f"study-{n}", {"modality": modality}, "reference",
        {"lesion": {"dice": candidate, "hd95": hd95}}, {"lesion": {"dice": baseline, "hd95": 2.0}},
    )  # fmt: skip


def _decided(cases: list[CaseScores], protocol: Protocol = PROTOCOL) -> dict[str, bool]:
    return {c.name: c.passed for c in decide(cases, protocol, aggregate(cases, protocol))}


def test_a_candidate_within_its_margin_passes_and_one_far_below_fails_by_name() -> None:
    close = [_case(n, 0.90 - 0.01 * (n % 2), 0.91, "CT" if n < 3 else "MR") for n in range(6)]
    decided = _decided(close)
    assert (
        decided["lesion dice non-inferior"] and decided["lesion hd95 non-inferior"] and all(decided.values())
    )

    worse = [_case(n, 0.70, 0.91, "CT" if n < 3 else "MR", hd95=12.0) for n in range(6)]
    decided = _decided(worse)
    assert not decided["lesion dice non-inferior"] and not decided["lesion hd95 non-inferior"]
    assert decided["minimum cases"]  # only what failed fails


def test_too_few_cases_or_a_missing_subgroup_fails_whatever_the_scores() -> None:
    decided = _decided([_case(n, 0.95, 0.90) for n in range(2)])
    assert (
        not decided["minimum cases"]
        and not decided["subgroup modality=MR"]
        and decided["subgroup modality=CT"]
    )


def test_the_interval_is_paired_and_reproducible() -> None:
    """A constant difference has a zero-width interval; the same seed gives the same report."""
    cases = [_case(n, 0.80 + 0.02 * n, 0.82 + 0.02 * n) for n in range(5)]
    row = aggregate(cases, PROTOCOL)["lesion"]["dice"]["improvement"]
    assert row["low"] == pytest.approx(-0.02) and row["high"] == pytest.approx(-0.02)
    noisy = [_case(n, 0.80 + 0.03 * (n % 3), 0.82) for n in range(8)]
    assert aggregate(noisy, PROTOCOL) == aggregate(noisy, PROTOCOL)


def test_metrics_on_known_masks() -> None:
    truth = np.zeros((20, 20, 10), np.uint8)
    truth[5:15, 5:15, 2:8] = 1
    shifted = np.roll(truth, 2, axis=0)
    scores = case_metrics(shifted, truth, {1: "lesion"}, (1.0, 1.0, 1.0), tolerance_mm=1.0)["lesion"]
    assert scores["dice"] == pytest.approx(0.8) and scores["hd95"] == pytest.approx(2.0)
    assert 0.0 < scores["surface_dice"] < 1.0
    missed = case_metrics(np.zeros_like(truth), truth, {1: "lesion"}, (1.0, 1.0, 1.0), 1.0)["lesion"]
    assert missed["dice"] == 0.0 and missed["surface_dice"] == 0.0 and missed["hd95"] > 20
    assert label_agreement(shifted, truth, {1: "lesion", 2: "other"}) == {
        "lesion": pytest.approx(0.8), "other": 1.0,
    }  # fmt: skip


def test_a_malformed_protocol_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "validation.json").write_text(
        json.dumps({"metrics": {"accuracy": {"margin": 1}}})
    )
    with pytest.raises(ProtocolError, match="unknown metric 'accuracy'"):
        read_protocol(tmp_path, "demo 1.0.0")
    (tmp_path / "configs" / "validation.json").write_text(json.dumps({"metrics": {"dice": {}}}))
    with pytest.raises(ProtocolError, match="validation.json of demo 1.0.0 is malformed"):
        read_protocol(tmp_path, "demo 1.0.0")
    assert read_protocol(tmp_path / "none", "x").min_cases == 3  # no file: the default protocol
