"""Offers to prepare a series ahead: once per pause, and at doubling pauses while it keeps receiving.

The end-to-end test in ``test_inference.py`` shows an offer used (and a stale one not used) by
the real inference process; this one pins down when the runner makes offers, on a fixed clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import appliance.pipeline.inference.runner as inference
from appliance.context import open_appliance
from appliance.db.tables import Patient, Series, SeriesState, Study
from appliance.pipeline.inference.messages import SeriesOffer


class Offers:
    """Stands in for the inference process: records what it is offered."""

    def __init__(self) -> None:
        self.series: list[int] = []

    def offer(self, offer: SeriesOffer) -> None:
        assert len(offer.objects) == 0  # the test's series has no instances stored
        self.series.append(offer.series_pk)


@pytest.fixture
def app(home, monkeypatch):
    monkeypatch.setenv("APPLIANCE_INFERENCE__PREPARE_AHEAD_SECONDS", "1")
    monkeypatch.setenv("APPLIANCE_ASSEMBLY__QUIET_SECONDS", "30")
    opened = open_appliance(home)
    yield opened
    opened.close()


def test_a_series_is_offered_once_per_pause_and_at_doubling_pauses_while_it_keeps_receiving(app, monkeypatch):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with app.session() as session:
        patient = Patient(lookup="p", name_enc=b"x", patient_id_enc=b"x", birth_date_enc=b"x")
        session.add(patient)
        session.flush()
        study = Study(study_uid="1.2.3", patient_pk=patient.id)  # type: ignore[arg-type]
        session.add(study)
        session.flush()
        series = Series(
            study_pk=study.id, series_uid="1.2.3.4", called_ae="APPLIANCE", last_received_at=start
        )  # type: ignore[arg-type]
        session.add(series)
        session.commit()
        pk = series.id

    def arrives(at: datetime, state: SeriesState = SeriesState.RECEIVING) -> None:
        with app.session() as session:
            row = session.get(Series, pk)
            row.last_received_at, row.state = at, state  # type: ignore[union-attr]
            session.add(row)
            session.commit()

    runner = inference.InferenceRunner(app)
    offers = Offers()
    runner.processes = [offers]  # type: ignore[list-item]
    now = start

    def at(seconds_quiet: float, since: datetime) -> list[int]:
        nonlocal now, next_pass
        now = since + timedelta(seconds=seconds_quiet)
        next_pass = runner.offer_quiet_series(None).seconds  # type: ignore[arg-type]
        return list(offers.series)

    next_pass = 0.0

    monkeypatch.setattr(inference, "utcnow", lambda: now)
    assert at(0.5, start) == []
    assert next_pass == pytest.approx(0.5)  # the next pass comes when the series falls due
    assert at(1.0, start) == [pk]  # quiet for prepare_ahead_seconds
    assert at(5.0, start) == [pk]  # the same pause: not again
    second = start + timedelta(seconds=6)
    arrives(second)  # it went on receiving: the next offer waits twice as long
    assert at(1.5, second) == [pk]
    assert next_pass == pytest.approx(0.5)
    assert at(2.0, second) == [pk, pk]
    third = second + timedelta(seconds=3)
    arrives(third)
    assert at(3.9, third) == [pk, pk]
    assert at(4.0, third) == [pk, pk, pk]
    arrives(third, SeriesState.COMPLETE)
    assert at(10.0, third) == [pk, pk, pk] and runner.offered == {}  # complete: forgotten
