"""The identifying values of an object's original header, as search patterns.

The free-text scrubber removes them from any text that survives, and the PHI gate refuses an output
that still holds one. A value is identifying when the profile removes, empties, replaces or shifts it
(X, Z, D, U, or C on a date), or when it is a person name the profile does not keep. Only values with
a searchable shape are used: person-name parts of three or more letters, short identifiers (LO, SH,
AE) with at least four letters or digits, dates (in many written formats), and UIDs. Each is matched
case-insensitively, whatever separators stand between its characters, and only as a whole word.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID_dictionary

from anonymizer.profile import Profile
from anonymizer.table import ProfileTable

_ID_VRS = {"LO", "SH", "AE"}
_MIN_UID_LENGTH = 8
_SEARCHED_VRS = {"PN", "DA", "DT", "UI", *_ID_VRS}
_SEPARATORS = r"[\s\-./_^,:;]*"
_WORD_START = r"(?<![A-Za-z0-9])"
_WORD_END = r"(?![A-Za-z0-9])"
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]


def walk(dataset: Dataset) -> Iterator[DataElement]:
    """Every element of ``dataset``, items of sequences at any depth included."""
    for element in dataset:
        yield element
        if element.VR == "SQ" and element.value:
            for item in element.value:
                yield from walk(item)


def _searched(dataset: Dataset) -> Iterator[DataElement]:
    """The public elements whose values can identify (and sequences' items, at any depth), each
    decoded; the others are left as read (decoding every number and bitmap cost a fifth of a
    file's handling, and the encoder writes an undecoded element's bytes as they came)."""
    for raw in dataset.elements():
        if raw.tag.is_private or (raw.VR is not None and raw.VR not in _SEARCHED_VRS and raw.VR != "SQ"):
            continue
        element = dataset[raw.tag]
        if element.VR == "SQ":
            for item in element.value or []:
                yield from _searched(item)
        elif element.VR in _SEARCHED_VRS:
            yield element


# Words that stand in for a name (test data, earlier de-identification) rather than name anyone.
PLACEHOLDER_WORDS = {
    "anonymized",
    "anonymised",
    "anonymous",
    "anon",
    "unknown",
    "none",
    "test",
    "name",
    "last",
    "first",
}


def name_parts(value: str) -> list[str]:
    parts = re.split(r"[\^=\s,]+", value)
    return [p for p in parts if sum(c.isalpha() for c in p) >= 3 and p.lower() not in PLACEHOLDER_WORDS]


def _spelled(token: str) -> str:
    """A token matched with any separators between its characters ("MRN-12 3" for "MRN123")."""
    return _SEPARATORS.join(re.escape(c) for c in token if c.isalnum())


def date_patterns(value: str) -> list[str]:
    text = value.strip()[:8]
    if len(text) != 8 or not text.isdigit():
        return []
    y, m, d = text[:4], int(text[4:6]), int(text[6:8])
    if not (1 <= m <= 12 and 1 <= d <= 31):
        return []
    sep = r"[\s\-./]?"
    strict = r"[\-./]"
    dd, mm = f"0?{d}", f"0?{m}"
    month = f"(?:{_MONTHS[m - 1]}|{_MONTHS[m - 1][:3]})\\.?"
    ordinal = r"(?:st|nd|rd|th)?"
    loose = r"[\s\-/.,]*"
    forms = [
        f"{y}{sep}{m:02d}{sep}{d:02d}",
        f"{dd}{strict}{mm}{strict}{y}",
        f"{mm}{strict}{dd}{strict}{y}",
        f"{dd}{strict}{mm}{strict}{y[2:]}",
        f"{mm}{strict}{dd}{strict}{y[2:]}",
        f"{dd}{ordinal}{loose}{month}{loose}{y}",
        f"{month}{loose}{dd}{ordinal}{loose}{y}",
    ]
    return [f"(?<!\\d)(?:{form})(?!\\d)" for form in forms]


@lru_cache(maxsize=256)
def _compile(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile("|".join(patterns), re.IGNORECASE) if patterns else None


@dataclass
class Identity:
    """Search patterns for one object's identifying values, each labelled with its attribute.

    Person-name parts are not looked for in coded strings (CS): a name such as "Text" would match the
    value type TEXT, and a CS value cannot carry free text. Original UIDs are kept apart and matched
    as plain substrings, so the patterns are the same for every object of a patient (and compiled once).
    """

    needles: list[tuple[str, bool, str]] = field(default_factory=list)  # label, is a name part, pattern
    uids: dict[str, str] = field(default_factory=dict)  # original UID -> label
    _pattern: re.Pattern[str] | None = None  # every needle in one pattern, once asked for
    _compiled: bool = False

    def add(self, label: str, pattern: str, name_part: bool = False) -> None:
        if all(existing != pattern for _, _, existing in self.needles):
            self.needles.append((label, name_part, pattern))
            self._compiled = False

    def pattern(self) -> re.Pattern[str] | None:
        """One pattern for every needle (compiled once per patient: the same needles, the same key)."""
        if not self._compiled:
            self._pattern, self._compiled = _compile(tuple(p for _, _, p in self.needles)), True
        return self._pattern

    def redact(self, text: str, placeholder: str) -> tuple[str, int]:
        count = 0
        for uid in self.uids:
            if uid in text:
                count += text.count(uid)
                text = text.replace(uid, placeholder)
        pattern = self.pattern()
        if pattern is not None:
            text, found = pattern.subn(placeholder, text)
            count += found
        return text, count

    def found_in(self, text: str, coded: bool = False) -> bool:
        """Whether ``text`` holds an identifying value; for a CS value (``coded``), one that is not a
        name part. One search with the whole pattern; only on a hit in a CS value are the needles
        tried one by one (rare: a second compiled pattern per patient cost more than it saved)."""
        pattern = self.pattern()
        if pattern is not None and pattern.search(text):
            if not coded or self.labels_in(text, coded=True):
                return True
        return any(uid in text for uid in self.uids)

    def labels_in(self, text: str, coded: bool = False) -> list[str]:
        """Which attributes' values ``text`` holds (only called on a hit)."""
        labels = {
            label
            for label, name, p in self.needles
            if not (coded and name) and re.search(p, text, re.IGNORECASE)
        }
        return sorted(labels | {label for uid, label in self.uids.items() if uid in text})


def _label(element: DataElement) -> str:
    return element.keyword or f"({element.tag.group:04X},{element.tag.element:04X})"


def _add_value(identity: Identity, element: DataElement, value: str) -> None:
    label = _label(element)
    if element.VR == "PN":
        for part in name_parts(value):
            identity.add(label, _WORD_START + _spelled(part) + _WORD_END, name_part=True)
    elif element.VR in ("DA", "DT"):
        for pattern in date_patterns(value):
            identity.add(label, pattern)
    elif element.VR == "UI":
        uid = value.strip("\x00 ")
        if len(uid) >= _MIN_UID_LENGTH and uid not in UID_dictionary:  # not a registered (class) UID
            identity.uids.setdefault(uid, label)
    elif element.VR in _ID_VRS and sum(c.isalnum() for c in value) >= 4:
        identity.add(label, _WORD_START + _spelled(value) + _WORD_END)


def _values(element: DataElement) -> list[str]:
    if element.VM == 0 or element.value is None:
        return []
    values = element.value if element.VM > 1 else [element.value]
    return [str(v) for v in values if str(v).strip()]


def identity_of(dataset: Dataset, profile: Profile, table: ProfileTable) -> Identity:
    """The identifying values of ``dataset`` (file meta and nested items included) under ``profile``."""
    identity = Identity()
    kept: set[str] = set()
    candidates: list[tuple[DataElement, str]] = []
    elements = list(_searched(dataset))
    if hasattr(dataset, "file_meta"):
        elements += list(dataset.file_meta)
    for element in elements:
        if element.tag.is_private or element.VR not in _SEARCHED_VRS:
            continue
        row = table.row(element.tag)
        action = profile.action(row) if row is not None else None
        values = _values(element)
        if action == "K":  # retained on purpose by an option: not identifying under this profile
            kept.update(v.strip().lower() for v in values)
            continue
        identifying = (
            element.VR == "PN"
            or action in ("X", "Z", "D", "U")
            or (action == "C" and element.VR in ("DA", "DT"))
        )
        if identifying:
            candidates.extend((element, v) for v in values)
    for element, value in candidates:
        if value.strip().lower() not in kept:
            _add_value(identity, element, value)
    return identity
