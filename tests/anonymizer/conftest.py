"""Fixtures for the de-identification tests: the real Table E.1-1, a secret, a de-identifier."""

from __future__ import annotations

import pytest

from anonymizer.engine import Deidentifier
from anonymizer.profile import named_profile
from anonymizer.table import ProfileTable, load_table
from testbed.planted import PlantedPatient
from tests.support.secrets import SECRET


@pytest.fixture(scope="session")
def table() -> ProfileTable:
    return load_table()


@pytest.fixture
def research(table: ProfileTable) -> Deidentifier:
    return Deidentifier(SECRET, named_profile("research"), table)


@pytest.fixture
def planted() -> PlantedPatient:
    return PlantedPatient()
