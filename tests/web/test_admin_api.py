"""The admin API: the same checks and audit as the CLI, metrics, keys as metadata only."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from appliance.context import open_appliance
from appliance.db.tables import Role
from audit.reader import read_entries
from testbed.processes import free_port
from tests.support.dimse import store_bytes

pytestmark = pytest.mark.slow


def test_admins_manage_sources_and_destinations_with_the_cli_checks_and_audit(site):
    headers = {"Authorization": f"Bearer {site.person('admin-peers', Role.ADMIN).token()}"}
    api = f"{site.base}/api"
    made = httpx.post(
        f"{api}/sources", headers=headers, json={"name": "ct9", "ae_title": "CT9", "host": "10.1.2.3"}
    )
    assert made.status_code == 201
    assert "ct9" in [s["name"] for s in httpx.get(f"{api}/sources", headers=headers).json()]
    bad = httpx.post(f"{api}/sources", headers=headers, json={"name": "x", "ae_title": "A" * 17, "host": "h"})
    assert bad.status_code == 400 and "AE title" in bad.json()["detail"]
    port = free_port()  # nothing listens there
    body = {"name": "nowhere", "ae_title": "NOWHERE", "host": "127.0.0.1", "port": port}
    assert httpx.post(f"{api}/destinations", headers=headers, json=body).status_code == 201
    echo = httpx.post(f"{api}/destinations/nowhere/echo", headers=headers, timeout=60)
    assert echo.status_code == 502 and "C-ECHO to nowhere failed" in echo.json()["detail"]
    assert httpx.delete(f"{api}/sources/ct9", headers=headers).status_code == 204
    assert httpx.delete(f"{api}/sources/ct9", headers=headers).status_code == 404
    app = open_appliance(site.home)
    try:
        entries = list(read_entries(app.settings.path(app.settings.audit.directory), app.audit_key))
    finally:
        app.close()
    changes = [e for e in entries if e.get("type") == "Configuration Change"]
    assert any(
        e["participants"][0]["user_id"] == "web:admin-peers" and "source ct9 added" in e["description"]
        for e in changes
    )


def test_keys_are_metadata_and_metrics_count_what_happened(site, tmp_path):
    odd = b"\x08\x00\x18\x00UI\x03\x001.2"  # an odd-length UID: refused with 0xC210
    refused = store_bytes(
        site.appliance.dicom_port, odd, CTImageStorage, "1.2", ExplicitVRLittleEndian, tmp_path
    )
    assert refused.status == 0xC210
    headers = {"Authorization": f"Bearer {site.person('admin-metrics', Role.ADMIN).token()}"}
    keys = httpx.get(f"{site.base}/api/keys", headers=headers).json()
    assert keys and set(keys[0]) == {"kek", "active", "wraps"}
    site.person("typo-user", Role.AUDITOR).login(password="wrong")
    text = httpx.get(f"{site.base}/metrics", headers=headers).text
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels or sample.labels.get("le") == "+Inf"
    }
    assert samples["appliance_instances_stored_total"] == len(site.study_a) + len(site.study_b)
    assert samples["appliance_sign_ins_failed_total"] >= 1
    assert samples["appliance_store_bytes"] > 0
    assert "appliance_inference_seconds_count" in samples
    assert samples["appliance_dicom_associations"] == 0
    assert samples["appliance_dicom_instances_received_total"] == len(site.study_a) + len(site.study_b)
    rejected = {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "appliance_dicom_instances_rejected_total"
    }
    assert rejected["0xC210"] == 1 and rejected["0xA700"] == rejected["0xA9D0"] == 0


def test_admins_promote_and_retire_models_as_the_cli_does(site):
    headers = {"Authorization": f"Bearer {site.person('admin-models', Role.ADMIN).token()}"}
    (model,) = httpx.get(f"{site.base}/api/models", headers=headers).json()
    assert model["state"] == "active"
    base = f"{site.base}/api/models/{model['name']}/{model['version']}"
    already = httpx.post(f"{base}/promote", headers=headers)
    assert already.status_code == 400 and "already the active version" in already.json()["detail"]
    assert httpx.post(f"{base}/retire", headers=headers).json()["state"] == "retired"
    again = httpx.post(f"{base}/promote", headers=headers)  # the registry's rule: import a new version
    assert again.status_code == 400 and "is retired" in again.json()["detail"]
    missing = httpx.post(f"{site.base}/api/models/{model['name']}/9.9.9/promote", headers=headers)
    assert missing.status_code == 404
