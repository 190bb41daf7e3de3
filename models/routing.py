"""Routing: rules that map a series to a model by modality, body part, description, SOP class, size.

Rules are tried in order; the first that matches names the model (its active version runs). A
series that no rule matches gets the reasons each rule gave, so "not routed" is never silent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RoutingRule(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled key is an error

    model: str = Field(description="model name; its active version runs")
    modality: list[str] = Field(default_factory=list, description="any of these Modality values; empty: any")
    body_part: list[str] = Field(default_factory=list, description="any of these Body Part Examined values")
    series_description: str = Field("", description="regular expression searched in Series Description")
    sop_classes: list[str] = Field(default_factory=list, description="any of these SOP Class UIDs")
    min_slices: int = Field(1, ge=1)
    timeout_seconds: float | None = Field(None, gt=0, description="overrides inference.timeout_seconds")

    @field_validator("series_description")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"series_description is not a regular expression: {exc}") from exc
        return value


@dataclass(frozen=True)
class SeriesFacts:
    modality: str
    body_part: str
    series_description: str
    sop_class_uid: str
    slices: int


def _mismatch(rule: RoutingRule, facts: SeriesFacts) -> str | None:
    upper = [value.upper() for value in rule.modality]
    if upper and facts.modality.upper() not in upper:
        return f"modality {facts.modality or '(none)'} not in {rule.modality}"
    parts = [value.upper() for value in rule.body_part]
    if parts and facts.body_part.upper() not in parts:
        return "body part not in the rule's list"
    if rule.series_description and not re.search(
        rule.series_description, facts.series_description, re.IGNORECASE
    ):
        return "series description does not match"
    if rule.sop_classes and facts.sop_class_uid not in rule.sop_classes:
        return f"SOP class {facts.sop_class_uid} not in the rule's list"
    if facts.slices < rule.min_slices:
        return f"{facts.slices} slices, fewer than {rule.min_slices}"
    return None


def route(rules: list[RoutingRule], facts: SeriesFacts) -> tuple[RoutingRule | None, str]:
    """The first matching rule, or None and why each rule did not match."""
    reasons = []
    for index, rule in enumerate(rules, start=1):
        mismatch = _mismatch(rule, facts)
        if mismatch is None:
            return rule, f"rule {index} ({rule.model})"
        reasons.append(f"rule {index} ({rule.model}): {mismatch}")
    return None, "no routing rule matched: " + ("; ".join(reasons) if reasons else "no rules configured")
