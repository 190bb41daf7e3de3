"""The auditors' API: search sortable by every field, CSV export, verification; every read audited."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from appliance.db.tables import Role

pytestmark = pytest.mark.slow


def test_auditors_search_sort_export_and_verify_and_each_read_is_recorded(site):
    reader = site.person("log-reader", Role.AUDITOR)
    site.person("someone-else", Role.RESEARCHER).token()  # a sign-in to find
    headers = {"Authorization": f"Bearer {reader.token()}"}
    events = httpx.get(f"{site.base}/api/audit/events", headers=headers, params={"event_id": "110114"}).json()
    assert {e["who"] for e in events} >= {"log-reader", "someone-else"}
    by_who = httpx.get(
        f"{site.base}/api/audit/events", headers=headers, params={"sort": "who", "order": "desc"}
    ).json()
    assert [e["who"] for e in by_who] == sorted((e["who"] for e in by_who), reverse=True)
    exported = httpx.get(f"{site.base}/api/audit/events", headers=headers, params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert exported.headers["content-type"].startswith("text/csv") and rows and "address" in rows[0]
    used = httpx.get(f"{site.base}/api/audit/events", headers=headers, params={"event_id": "110101"}).json()
    assert len([e for e in used if e["who"] == "log-reader" and e["address"] == "127.0.0.1"]) >= 3
    verified = httpx.get(f"{site.base}/api/audit/verify", headers=headers).json()
    assert verified["verified"] is True and verified["entries"] > 0
    bad = httpx.get(f"{site.base}/api/audit/events", headers=headers, params={"sort": "nonsense"})
    assert bad.status_code == 422
