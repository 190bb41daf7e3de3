"""Free-text scrubbing: the object's own identifying values, then the generic recognisers.

The generic finds (:mod:`anonymizer.recognisers`) depend on the text alone, so they are cached per
distinct text: the 300 slices of a series repeat the same few descriptions.
"""

from __future__ import annotations

from functools import lru_cache

from anonymizer import recognisers
from anonymizer.identity import Identity

PLACEHOLDER = "***"


@lru_cache(maxsize=65536)
def _generic_spans(text: str) -> tuple[tuple[int, int], ...]:
    return tuple(recognisers.spans(text))


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
