"""The series pipeline on its own: headers and a pixel loader held in memory, no database or process."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import Comprehensive3DSRStorage, SegmentationStorage

from models import pipeline
from models.errors import ModelError
from models.routing import RoutingRule
from testbed.bundles import demo_predictor
from testbed.phantom import make_phantom
from testbed.synthetic import phantom_series
from tests.support.datasets import HeadersFirst, read_back

SPACING = (1.5, 1.5, 3.0)


@pytest.fixture(scope="module")
def predictor():
    return demo_predictor("cpu")


@pytest.fixture(scope="module")
def datasets() -> list[Dataset]:
    phantom = make_phantom((64, 56, 20), SPACING, seed=5, lesion_count=2)
    return read_back(phantom_series(phantom.hu, SPACING))


def test_a_series_in_memory_runs_to_seg_and_sr_with_the_model_identity(predictor, datasets):
    source = HeadersFirst(datasets)
    asked: list[str] = []

    def predictor_for(name: str):
        asked.append(name)
        return predictor

    rules = [
        RoutingRule(model="mr-model", modality=["MR"]),
        RoutingRule(model=predictor.name, modality=["CT"]),
    ]
    results = pipeline.run_series(source, rules, predictor_for)
    assert isinstance(results, pipeline.SeriesResults)
    assert asked == [predictor.name] and results.why == f"rule 2 ({predictor.name})"
    assert results.model == predictor.identity and len(results.model.digest) == 64
    assert results.segmentation.SOPClassUID == SegmentationStorage
    assert results.report.SOPClassUID == Comprehensive3DSRStorage
    assert results.segmentation.StudyInstanceUID == datasets[0].StudyInstanceUID
    assert set(results.volumes_ml) == {segment.label for segment in predictor.segments}
    stages = {"route", "volume", "preprocessing", "network", "postprocessing", "results"}
    assert stages <= set(results.timings)
    assert len(source.loads) == len(datasets)  # each whole object read once, for the volume


def test_the_two_steps_give_what_one_call_gives(predictor, datasets):
    rules = [RoutingRule(model=predictor.name)]
    prepared = pipeline.prepare_series(HeadersFirst(datasets), rules, lambda _name: predictor)
    assert isinstance(prepared, pipeline.PreparedSeries)
    assert prepared.volume.array.shape == (64, 56, 20)
    finished = pipeline.finish_series(prepared)
    once = pipeline.run_series(HeadersFirst(datasets), rules, lambda _name: predictor)
    assert isinstance(once, pipeline.SeriesResults)
    assert finished.volumes_ml == once.volumes_ml


def test_a_series_no_rule_matches_is_unrouted_with_each_rules_reason(datasets):
    def predictor_for(name: str):
        raise AssertionError("no model is loaded for an unrouted series")

    rules = [RoutingRule(model="m", modality=["MR"])]
    answer = pipeline.run_series(HeadersFirst(datasets), rules, predictor_for)
    assert answer == pipeline.Unrouted("no routing rule matched: rule 1 (m): modality CT not in ['MR']")


def test_an_empty_series_is_a_model_error():
    with pytest.raises(ModelError, match="no stored instances"):
        pipeline.run_series(HeadersFirst([]), [RoutingRule(model="m")], lambda _name: None)  # type: ignore[arg-type,return-value]


def test_the_demo_models_results_say_they_are_not_for_clinical_use(predictor, datasets):
    assert not predictor.identity.for_clinical_use  # its bundle's task says so
    results = pipeline.run_series(
        HeadersFirst(datasets), [RoutingRule(model=predictor.name)], lambda _: predictor
    )
    assert isinstance(results, pipeline.SeriesResults)
    assert results.segmentation.SeriesDescription.endswith("(NOT FOR CLINICAL USE)")
    assert "NOT FOR CLINICAL USE" in results.segmentation.ContentDescription
    assert results.report.SeriesDescription.endswith("(NOT FOR CLINICAL USE)")
    content = [e for item in results.report.ContentSequence for e in item.iterall()]
    texts = [str(e.value) for e in content if e.VR in ("UT", "LO")]
    assert any("NOT FOR CLINICAL USE" in text for text in texts)  # in the report's content tree
