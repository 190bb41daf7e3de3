"""Named de-identification profiles: the Basic Profile plus a chosen set of PS3.15 Annex E options.

An attribute's action is the table's: an option the profile selects overrides the Basic Profile (a
retaining K wins over a cleaning C). A combined Basic Profile action (``X/Z``, ``Z/D``, ``X/D``,
``X/Z/D``, ``X/Z/U*``) is resolved without per-IOD module tables by one reviewed rule: an attribute that
no standard composite IOD contains is removed (or emptied, for ``Z/D``); one that a standard IOD may
require gets the least destructive conformant action (D before Z before U), so the object stays valid.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from anonymizer.errors import ProfileError
from anonymizer.table import Row


class Option(StrEnum):
    """The Annex E options, with their column in Table E.1-1 and their CID 7050 code."""

    retain_safe_private = "retain_safe_private"
    retain_uids = "retain_uids"
    retain_device_identity = "retain_device_identity"
    retain_institution_identity = "retain_institution_identity"
    retain_patient_characteristics = "retain_patient_characteristics"
    retain_full_dates = "retain_full_dates"
    retain_modified_dates = "retain_modified_dates"
    clean_descriptors = "clean_descriptors"
    clean_structured_content = "clean_structured_content"
    clean_graphics = "clean_graphics"

    @property
    def column(self) -> str:
        return _OPTIONS[self][0]

    @property
    def code(self) -> tuple[str, str]:
        return _OPTIONS[self][1], _OPTIONS[self][2]


_OPTIONS = {
    Option.retain_safe_private: ("rtnSafePrivOpt", "113111", "Retain Safe Private Option"),
    Option.retain_uids: ("rtnUIDsOpt", "113110", "Retain UIDs Option"),
    Option.retain_device_identity: ("rtnDevIdOpt", "113109", "Retain Device Identity Option"),
    Option.retain_institution_identity: ("rtnInstIdOpt", "113112", "Retain Institution Identity Option"),
    Option.retain_patient_characteristics: (
        "rtnPatCharsOpt",
        "113108",
        "Retain Patient Characteristics Option",
    ),
    Option.retain_full_dates: (
        "rtnLongFullDatesOpt",
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    Option.retain_modified_dates: (
        "rtnLongModifDatesOpt",
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.clean_descriptors: ("cleanDescOpt", "113105", "Clean Descriptors Option"),
    Option.clean_structured_content: ("cleanStructContOpt", "113104", "Clean Structured Content Option"),
    Option.clean_graphics: ("cleanGraphOpt", "113103", "Clean Graphics Option"),
}
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
CLEAN_PIXEL_DATA_CODE = ("113101", "Clean Pixel Data Option")

_IN_IOD = {"Z/D": "D", "X/Z": "Z", "X/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}
_NOT_IN_IOD = {"Z/D": "Z", "X/Z": "X", "X/D": "X", "X/Z/D": "X", "X/Z/U*": "X"}


@lru_cache(maxsize=8192)
def _resolve(row: Row, options: tuple[Option, ...]) -> str:
    chosen = {row.option(o.column) for o in options} - {None}
    if "K" in chosen:
        return "K"
    if "C" in chosen:
        return "C"
    if "/" not in row.basic:
        return row.basic
    return (_IN_IOD if row.in_standard_iod else _NOT_IN_IOD)[row.basic]


class SafePrivate(BaseModel):
    """A private attribute kept by the Retain Safe Private option: creator, odd group, element byte."""

    model_config = ConfigDict(extra="forbid")  # a misspelled key is an error

    creator: str
    group: int = Field(ge=0x0009, le=0xFFFF)
    element: int = Field(ge=0x00, le=0xFF, description="the low byte of the element number")

    @field_validator("group")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"private groups are odd; got {value:04X}")
        return value


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled key is an error

    name: str = Field("", description="set from its key when read from the settings")
    options: list[Option] = Field(default_factory=list)
    safe_private: list[SafePrivate] = Field(default_factory=list)
    redact_burned_in_text: bool = Field(True, description="OCR and black out text in at-risk pixel data")

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if {Option.retain_full_dates, Option.retain_modified_dates} <= set(self.options):
            raise ValueError("retain_full_dates and retain_modified_dates exclude each other")
        return self

    def action(self, row: Row) -> str:
        """The single action (D, Z, X, K, C or U) this profile takes for a table row."""
        return _resolve(row, tuple(self.options))

    def has(self, option: Option) -> bool:
        return option in self.options


BUILT_IN = {
    "basic": Profile(name="basic"),
    # For research: intervals kept (dates shifted per patient), descriptors, SR content and graphics
    # kept but scrubbed, age/sex/size kept. Device and institution identity and UIDs are not kept.
    "research": Profile(
        name="research",
        options=[
            Option.retain_modified_dates,
            Option.retain_patient_characteristics,
            Option.clean_descriptors,
            Option.clean_structured_content,
            Option.clean_graphics,
        ],
    ),
}
DEFAULT_PROFILE = "research"


def named_profile(name: str, configured: dict[str, Profile] | None = None) -> Profile:
    profiles = {**BUILT_IN, **(configured or {})}
    try:
        return profiles[name].model_copy(update={"name": name})
    except KeyError:
        raise ProfileError(f"no profile named {name!r}; known: {', '.join(sorted(profiles))}") from None
