"""Start-up reconciliation: partial writes removed, unindexed files quarantined, losses reported."""

from __future__ import annotations

from sqlmodel import select

from appliance.context import open_appliance
from appliance.db.tables import Instance, Series
from appliance.home import init_home
from appliance.storage.reconcile import reconcile
from appliance.storage.store import new_object_id
from appliance.storage.writer import ObjectWriter
from dicom_gateway.received import instance_from_part10
from testbed.synthetic import ct_series, write_series
from tests.support.inspect import audit_events


def test_reconcile_reports_and_repairs(tmp_path):
    home = tmp_path / "home"
    init_home(home)
    app = open_appliance(home)
    index = ObjectWriter(app)
    try:
        for path in write_series(tmp_path / "in", ct_series(3)):
            index.store(instance_from_part10(path.read_bytes(), "SCU", "APPLIANCE"))
    finally:
        index.close()
    with app.session() as session:
        lost = session.exec(select(Instance)).first()
    app.store.path_of(lost.object_id).unlink()  # an indexed instance whose file vanished
    orphan = new_object_id()
    app.store.put(orphan, b"never indexed")  # a write whose index row never committed
    partial = app.store.path_of(new_object_id()).with_name(".tmp-partial")
    partial.write_bytes(b"half")

    report = reconcile(app)

    assert report.partial_writes_removed == 1 and not partial.exists()
    assert report.orphans_quarantined == [orphan]
    assert (app.store.root / "orphaned" / app.store.path_of(orphan).name).exists()
    assert report.missing_files == [lost.sop_instance_uid]
    with app.session() as session:
        assert session.exec(select(Instance).where(Instance.id == lost.id)).first() is None
        assert session.exec(select(Series)).one().instance_count == 2
    alerts = [e for e in audit_events(home) if e["type"] == "Object Integrity"]
    assert [a["objects"][0]["id"] for a in alerts] == [lost.sop_instance_uid]
    assert reconcile(app).missing_files == []  # a second pass finds nothing more
