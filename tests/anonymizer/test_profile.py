"""Table E.1-1 drives the actions; options override the Basic Profile; combined actions resolve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom.datadict import tag_for_keyword

from anonymizer.errors import ProfileError
from anonymizer.profile import Option, Profile, named_profile
from anonymizer.table import DEFAULT_TABLE, ProfileTable, load_table


def _action(table: ProfileTable, profile: Profile, keyword: str) -> str:
    row = table.row(tag_for_keyword(keyword))
    assert row is not None, keyword
    return profile.action(row)


def test_every_row_of_the_shared_table_is_loaded(table: ProfileTable) -> None:
    rows = json.loads(DEFAULT_TABLE.read_text())
    assert len(table.rows) + 4 == len(rows) == 621  # four rows are patterns
    assert table.row(0x60043000) is table.overlay_data
    assert table.row(0x60024000) is table.overlay_comments
    assert table.row(0x60040010) is table.overlay_data  # other overlay elements follow the data
    assert table.row(0x50001234) is table.curve
    assert table.row(0x00280010) is None  # Rows: not in the table


def test_basic_profile_actions_come_from_the_table(table: ProfileTable) -> None:
    basic = named_profile("basic")
    assert _action(table, basic, "PatientName") == "Z"
    assert _action(table, basic, "StudyInstanceUID") == "U"
    assert _action(table, basic, "PatientAddress") == "X"
    assert _action(table, basic, "StudyDate") == "Z"
    assert _action(table, basic, "StudyDescription") == "X"
    # combined actions: in a standard IOD, the least destructive conformant one
    assert _action(table, basic, "PatientID") == "D"  # Z/D
    assert _action(table, basic, "InstitutionName") == "D"  # X/Z/D
    assert _action(table, basic, "ReferencedImageSequence") == "U"  # X/Z/U*
    assert _action(table, basic, "ProtocolName") == "D"  # X/D


def test_options_override_the_basic_profile(table: ProfileTable) -> None:
    research = named_profile("research")
    assert _action(table, research, "StudyDate") == "C"  # modified dates
    assert _action(table, research, "StudyDescription") == "C"  # clean descriptors
    assert _action(table, research, "PatientSex") == "K"  # patient characteristics
    assert _action(table, research, "InstitutionName") == "D"  # institution identity not retained
    keep_all = Profile(name="k", options=[Option.retain_uids, Option.retain_institution_identity])
    assert _action(table, keep_all, "StudyInstanceUID") == "K"
    assert _action(table, keep_all, "InstitutionName") == "K"


def test_contradictory_options_and_unknown_profiles_are_refused() -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        Profile(name="x", options=[Option.retain_full_dates, Option.retain_modified_dates])
    with pytest.raises(ProfileError, match="no profile named 'nope'; known: basic, research"):
        named_profile("nope")


def test_a_missing_or_broken_table_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not found"):
        load_table(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text(
        json.dumps([{"id": "00100010", "tag": "(0010,0010)", "name": "x", "basicProfile": "Q"}])
    )
    with pytest.raises(ProfileError, match="unknown basic profile action 'Q'"):
        load_table(broken)
    no_patterns = tmp_path / "nopatterns.json"
    no_patterns.write_text(
        json.dumps([{"id": "00100010", "tag": "(0010,0010)", "name": "x", "basicProfile": "Z"}])
    )
    with pytest.raises(ProfileError, match="lacks the pattern row"):
        load_table(no_patterns)
