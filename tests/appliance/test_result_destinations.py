"""Results go only where they are asked for: a destination added without --results gets none."""

from __future__ import annotations

from appliance.admin.peers import add_destination
from appliance.context import open_appliance
from appliance.pipeline.sending import result_destinations


def test_only_destinations_marked_for_results_receive_them(home, monkeypatch):
    app = open_appliance(home)
    try:
        add_destination(app, "tester", "clinical-pacs", "PACS", "127.0.0.1", 104, False)
        assert result_destinations(app) == []  # a first install's clinical PACS gets no demo output
        add_destination(app, "tester", "research-pacs", "RESEARCH", "127.0.0.1", 105, False, results=True)
        assert result_destinations(app) == ["research-pacs"]
    finally:
        app.close()
    monkeypatch.setenv("APPLIANCE_INFERENCE__DESTINATIONS", '["clinical-pacs"]')
    app = open_appliance(home)
    try:
        assert result_destinations(app) == ["clinical-pacs"]  # named in the configuration: that one
    finally:
        app.close()
