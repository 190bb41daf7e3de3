"""QIDO-RS query parameters and the matching of PS3.4 C.2.2.2 on DICOM JSON records.

Matching: an empty value is universal (matches all, and the attribute is returned); ``*`` and ``?``
are wildcards (not for dates, times or UIDs); a DA, TM or DT value with a hyphen is a range (either
end may be open); a UI value is a list of UIDs separated by backslashes; anything else is single
value matching, exact, except person names, which match whatever their case (as Orthanc does by
default, ``CaseSensitivePN`` off). Keys are attribute keywords or tags (``PatientName`` or
``00100010``); ``includefield``, ``limit``, ``offset`` and ``fuzzymatching`` are the other parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from dicom_gateway.errors import DicomwebRefused

_CONTROL = {"includefield", "limit", "offset", "fuzzymatching"}
_RANGE_VRS = {"DA", "TM", "DT"}
_MAX_LIMIT = 10000


def _tag(key: str) -> str:
    """``PatientName`` or ``00100010`` as the 8-hex-digit tag that DICOM JSON keys by."""
    if re.fullmatch(r"[0-9A-Fa-f]{8}", key):
        return key.upper()
    tag = tag_for_keyword(key)
    if tag is None:
        raise DicomwebRefused(400, f"unknown attribute {key!r} in the query: use a keyword or 8 hex digits")
    return f"{tag:08X}"


@lru_cache(maxsize=1024)
def _vr(tag: str) -> str:
    try:
        return dictionary_VR(int(tag, 16))
    except KeyError:
        return "UN"


@dataclass(frozen=True)
class Query:
    """The matching keys (tag -> value), the extra attributes asked for, and the page."""

    keys: dict[str, str] = field(default_factory=dict)
    include: frozenset[str] = frozenset()
    include_all: bool = False
    limit: int | None = None
    offset: int = 0

    @classmethod
    def parse(cls, params: list[tuple[str, str]]) -> Query:
        keys: dict[str, str] = {}
        include: set[str] = set()
        include_all, limit, offset = False, None, 0
        for name, value in params:
            if name == "includefield":
                for item in value.split(","):
                    if item.strip() == "all":
                        include_all = True
                    elif item.strip():
                        include.add(_tag(item.strip()))
            elif name in ("limit", "offset"):
                if not value.isdigit():
                    raise DicomwebRefused(400, f"{name} must be a whole number, not {value!r}")
                if name == "limit":
                    limit = min(int(value), _MAX_LIMIT)
                else:
                    offset = int(value)
            elif name == "fuzzymatching":
                continue  # person names already match whatever their case; nothing fuzzier is offered
            else:
                keys[_tag(name)] = value
        return cls(keys, frozenset(include), include_all, limit, offset)

    def matches(self, record: Mapping) -> bool:
        return all(_matches(_values(record, tag), value, _vr(tag)) for tag, value in self.keys.items())

    def exact_keys(self) -> dict[str, str]:
        """The keys matched by one exact value (no wildcard, range, list or person name): those a
        catalogue may look up in an index before matching the rest."""
        return {
            tag: value
            for tag, value in self.keys.items()
            if value
            and not any(c in value for c in "*?\\")
            and _vr(tag) not in ("PN", "SQ")
            and not (_vr(tag) in _RANGE_VRS and "-" in value)
        }

    def page(self, records: list[dict]) -> list[dict]:
        chosen = [r for r in records if self.matches(r)][self.offset :]
        return chosen if self.limit is None else chosen[: self.limit]

    def shape(self, record: dict, defaults: frozenset[str]) -> dict:
        """The attributes returned for ``record``: the level's defaults, the keys matched on, and
        those asked for with ``includefield`` (``all``: every attribute held)."""
        if self.include_all:
            return record
        wanted = defaults | self.include | self.keys.keys()
        return {tag: element for tag, element in record.items() if tag in wanted}

    def describe(self) -> str:
        """The query's attribute names, without their values (for a log line: values can be PHI)."""
        return ",".join(sorted(keyword_for_tag(int(t, 16)) or t for t in self.keys))


def _values(record: Mapping, tag: str) -> list[str]:
    element = record.get(tag)
    if not element:
        return []
    values = element.get("Value") or []
    out = []
    for value in values:
        if isinstance(value, dict):  # a person name: its alphabetic form
            out.append(str(value.get("Alphabetic", "")))
        else:
            out.append(str(value))
    return out


@lru_cache(maxsize=512)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _in_range(value: str, wanted: str) -> bool:
    low, _, high = wanted.partition("-")
    value = value.strip()
    if not value:
        return False
    width = max(len(low), len(high))
    candidate = value[:width] if width else value
    return (not low or candidate >= low) and (not high or candidate <= high)


def _matches(values: list[str], wanted: str, vr: str) -> bool:
    if wanted == "" or wanted == "*":
        return True
    if not values:
        return False
    if vr == "UI":
        return bool(set(values) & set(wanted.split("\\")))
    if vr in _RANGE_VRS and "-" in wanted:
        return any(_in_range(v, wanted) for v in values)
    ignore_case = vr == "PN"
    if vr not in _RANGE_VRS and ("*" in wanted or "?" in wanted):
        pattern = _wildcard(wanted, ignore_case)
        return any(pattern.fullmatch(v) for v in values)
    if ignore_case:
        return any(v.lower() == wanted.lower() for v in values)
    return wanted in values
