"""Two committers (each gateway process has one) creating the same new series both store."""

from __future__ import annotations

import threading

from sqlmodel import func, select

from appliance.context import open_appliance
from appliance.db.tables import Instance, Patient, Series, Study
from appliance.storage.writer import ObjectWriter
from dicom_gateway.received import instance_from_part10
from testbed.synthetic import ct_series, write_series


def test_both_stores_succeed_when_their_lookups_cross(home, tmp_path):
    both_looked = threading.Barrier(2)

    class CrossingLookups(ObjectWriter):
        """Inserts a new patient only once the other committer has looked for it too: both
        lookups miss, both insert, and the second insert meets the first one's row."""

        def _row_id(self, connection, created, key, find, row, inserted=None):  # type: ignore[no-untyped-def]
            def after_both_looked():  # type: ignore[no-untyped-def]
                if key[0] == "patient":
                    both_looked.wait(timeout=30)
                return row()

            return super()._row_id(connection, created, key, find, after_both_looked, inserted)

    paths = write_series(tmp_path / "in", ct_series(2))
    instances = [instance_from_part10(path.read_bytes(), "SCU", "APPLIANCE") for path in paths]
    app = open_appliance(home)
    indexes = [CrossingLookups(app), CrossingLookups(app)]
    outcomes: dict[int, object] = {}

    def store(number: int) -> None:
        try:
            outcomes[number] = indexes[number].store(instances[number])
        except Exception as exc:  # the test's answer, not a crash of its thread
            outcomes[number] = exc

    threads = [threading.Thread(target=store, args=(number,)) for number in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        with app.session() as session:
            counts = [
                session.exec(select(func.count()).select_from(t)).one()
                for t in (Patient, Study, Series, Instance)
            ]
    finally:
        for index in indexes:
            index.close()
        app.close()
    assert all(isinstance(pk, int) for pk in outcomes.values()) and len(outcomes) == 2, outcomes
    assert counts == [1, 1, 1, 2]
