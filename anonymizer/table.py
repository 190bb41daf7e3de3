"""PS3.15 Table E.1-1 (the Attribute Confidentiality Profiles), read from its JSON form.

Every action the engine takes for an attribute listed in the standard comes from this table; the
table is not copied into the code. Four rows are patterns: curve data (50xx,xxxx), overlay data and
comments (60xx,3000 / 60xx,4000) and private attributes (odd groups).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from anonymizer.errors import ProfileError

# PS3.15 Table E.1-1 as JSON, shipped as package data (its source and licence beside it)
DEFAULT_TABLE = Path(__file__).resolve().parent / "standards" / "confidentiality_profile_attributes.json"

OPTION_FIELDS = (
    "rtnSafePrivOpt",
    "rtnUIDsOpt",
    "rtnDevIdOpt",
    "rtnInstIdOpt",
    "rtnPatCharsOpt",
    "rtnLongFullDatesOpt",
    "rtnLongModifDatesOpt",
    "cleanDescOpt",
    "cleanStructContOpt",
    "cleanGraphOpt",
)
BASIC_ACTIONS = {"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}


@dataclass(frozen=True)
class Row:
    name: str
    basic: str
    in_standard_iod: bool
    options: tuple[tuple[str, str], ...]  # (option column, action), hashable so actions can be cached

    def option(self, column: str) -> str | None:
        return next((action for name, action in self.options if name == column), None)


@dataclass(frozen=True)
class ProfileTable:
    rows: dict[int, Row]
    curve: Row
    overlay_data: Row
    overlay_comments: Row
    private: Row

    def row(self, tag: int) -> Row | None:
        """The row for a public tag, patterns included (any other 60xx element follows overlay data)."""
        found = self.rows.get(tag)
        if found is not None:
            return found
        group = tag >> 16
        if 0x5000 <= group <= 0x50FF and group % 2 == 0:
            return self.curve
        if 0x6000 <= group <= 0x60FF and group % 2 == 0:
            return self.overlay_comments if tag & 0xFFFF == 0x4000 else self.overlay_data
        return None


def _row(entry: dict) -> Row:
    basic = entry.get("basicProfile")
    if basic not in BASIC_ACTIONS:
        raise ProfileError(f"row {entry.get('tag')!r} has an unknown basic profile action {basic!r}")
    options = tuple((field, entry[field]) for field in OPTION_FIELDS if entry.get(field))
    return Row(entry["name"].split("\n")[0].strip(), basic, entry.get("stdCompIOD") == "Y", options)


def load_table(path: Path = DEFAULT_TABLE) -> ProfileTable:
    """Parse the table; refuse one that is missing, malformed or lacks a pattern row."""
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        raise ProfileError(
            f"confidentiality profile table {path} not found; set deidentify.profile_table "
            "(or --profile-table) to PS3.15 Table E.1-1 as JSON"
        ) from None
    except (OSError, ValueError) as error:
        raise ProfileError(f"confidentiality profile table {path} cannot be read: {error}") from None
    rows: dict[int, Row] = {}
    patterns: dict[str, Row] = {}
    for entry in entries:
        ident = entry.get("id", "")
        if len(ident) == 8 and all(c in "0123456789abcdef" for c in ident):
            rows[int(ident, 16)] = _row(entry)
        else:
            patterns[ident] = _row(entry)
    try:
        return ProfileTable(
            rows,
            curve=patterns["50xxxxxx"],
            overlay_data=patterns["60xx3000"],
            overlay_comments=patterns["60xx4000"],
            private=patterns["ggggeeee-where-gggg-is-odd"],
        )
    except KeyError as missing:
        raise ProfileError(f"confidentiality profile table {path} lacks the pattern row {missing}") from None
