"""Free-text scrubbing: the object's own identifying values, then presidio's recognisers.

presidio-analyzer runs fully offline with only pattern-based recognisers, none of which consults
tldextract's public-suffix list (which would be fetched from the network), and presidio's no-op
language engine: pattern recognisers need no tokens, and context words (which need lemmas) never
matched with the blank spaCy pipeline used before, whose building cost 0.3 s per process. Names in
free text are caught by the object's own header values (strongest, any order and case), by titles
("Dr Smith") and by DICOM-style ``FAMILY^GIVEN`` names.
presidio's findings depend on the text alone, so they are cached per distinct text.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from anonymizer.identity import Identity

PLACEHOLDER = "***"
_SCORE_THRESHOLD = 0.4

_PATTERNS = {
    "EMAIL_ADDRESS": [(r"\b[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+\b", 0.9)],
    "PERSON": [
        (
            r"\b(?:Dr|Mr|Mrs|Ms|Miss|Prof|Doctor|Patient|Pt|Name|Dear|Signed|Surname)\.?:?\s+"
            r"[A-Z][A-Za-z'\-]+(?:,?\s+[A-Z][A-Za-z'\-]+)?",
            0.6,
        ),
        (r"\b[A-Za-z'\-]+\^[A-Za-z'\-]+(?:\^[A-Za-z'\-]*)*", 0.8),
    ],
    "ADDRESS": [
        (
            r"\b\d{1,5}\s+(?:[A-Z][A-Za-z]+\s+){1,3}"
            r"(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Boulevard|Blvd|Way|Court|Ct|Place|Pl|Close)\b\.?",
            0.7,
        ),
        (r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b", 0.5),  # UK postcode
    ],
    "IDENTIFIER": [
        (
            r"\b(?:MRN|ID|No|Number|Acc|Accession|NHS|SSN|Hospital\s+No)\.?\s*[:#]?\s*[A-Z0-9][A-Z0-9\-]{3,}\b",
            0.7,
        ),
        (r"\b\d{3}-\d{2}-\d{4}\b", 0.8),
        (r"\b\d{6,}\b", 0.5),
    ],
}


@contextmanager
def _without_torch() -> Iterator[None]:
    """Imports inside cannot load PyTorch: spaCy's thinc and presidio's device detection try to, which
    costs seconds and hundreds of MB that a blank pipeline never uses. Only when PyTorch is not loaded
    already; afterwards ``import torch`` works as usual."""
    if "torch" in sys.modules:
        yield
        return
    sys.modules["torch"] = None  # type: ignore[assignment] - makes ``import torch`` raise ImportError
    try:
        yield
    finally:
        del sys.modules["torch"]


@lru_cache(maxsize=1)
def _analyzer():  # noqa: ANN202 - presidio's engine; imported lazily (spaCy takes a second to load)
    with _without_torch():
        from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NoOpNlpEngine
        from presidio_analyzer.predefined_recognizers import DateRecognizer, IpRecognizer, PhoneRecognizer

    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (DateRecognizer(), PhoneRecognizer(), IpRecognizer()):
        registry.add_recognizer(recognizer)
    for entity, patterns in _PATTERNS.items():
        registry.add_recognizer(
            PatternRecognizer(
                supported_entity=entity,
                name=f"appliance-{entity.lower()}",
                patterns=[
                    Pattern(f"{entity.lower()}-{i}", regex, score)
                    for i, (regex, score) in enumerate(patterns)
                ],
            )
        )
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


@lru_cache(maxsize=65536)
def _generic_spans(text: str) -> tuple[tuple[int, int], ...]:
    results = _analyzer().analyze(text=text, language="en", score_threshold=_SCORE_THRESHOLD)
    return tuple(sorted((r.start, r.end) for r in results))


def _merge(spans: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def scrub(text: str, identity: Identity) -> tuple[str, int]:
    """``text`` with every identifying span replaced by the placeholder, and how many were replaced."""
    if not text.strip():
        return text, 0
    text, own = identity.redact(text, PLACEHOLDER)
    spans = _merge(_generic_spans(text))
    for start, end in reversed(spans):
        text = text[:start] + PLACEHOLDER + text[end:]
    return text, own + len(spans)


def warm_up() -> None:
    """Load presidio and spaCy now (about a second) rather than inside the first object."""
    _generic_spans("warm up 2020-01-01")
