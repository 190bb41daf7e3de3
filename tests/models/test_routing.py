"""Routing rules: the first match wins; a series no rule matches says why, rule by rule."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from models.routing import RoutingRule, SeriesFacts, route

CT = "1.2.840.10008.5.1.4.1.1.2"
FACTS = SeriesFacts(
    modality="CT", body_part="ABDOMEN", series_description="Abdomen 1.0 B30f", sop_class_uid=CT, slices=120
)


def test_first_matching_rule_wins():
    rules = [
        RoutingRule(model="brain", modality=["MR"]),
        RoutingRule(model="liver", modality=["ct"], body_part=["abdomen"], series_description=r"b30f"),
        RoutingRule(model="fallback"),
    ]
    rule, why = route(rules, FACTS)
    assert rule is not None and rule.model == "liver" and why == "rule 2 (liver)"


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        (RoutingRule(model="m", modality=["MR", "PT"]), "modality CT not in ['MR', 'PT']"),
        (RoutingRule(model="m", body_part=["HEAD"]), "body part not in the rule's list"),
        (RoutingRule(model="m", series_description="^localizer"), "series description does not match"),
        (RoutingRule(model="m", sop_classes=["1.2.840.10008.5.1.4.1.1.4"]), f"SOP class {CT} not in"),
        (RoutingRule(model="m", min_slices=200), "120 slices, fewer than 200"),
    ],
)
def test_each_criterion_refuses_with_its_reason(rule, reason):
    matched, why = route([rule], FACTS)
    assert matched is None
    assert why.startswith("no routing rule matched: rule 1 (m): ") and reason in why
    assert "B30f" not in why  # the description's text (free text, may hold PHI) is never echoed


def test_no_rules_and_bad_pattern():
    assert route([], FACTS) == (None, "no routing rule matched: no rules configured")
    with pytest.raises(ValidationError):
        RoutingRule(model="m", series_description="([unclosed")
