"""DICOMweb from the encrypted store: what a clinician may see and read, break-glass, the audit of
each access, byte-identical retrieval (dicomweb-client), and QIDO matching compared with Orthanc's
DICOMweb plugin answering the same queries over the same studies."""

from __future__ import annotations

import json
import urllib.request
from datetime import timedelta
from io import BytesIO

import httpx
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import CTImageStorage
from sqlalchemy import update
from sqlmodel import select

from appliance.context import open_appliance
from appliance.db.tables import BreakGlass, Role, Study, StudySummary, utcnow
from appliance.storage import study_summary
from audit.reader import read_entries
from testbed.processes import OrthancProcess
from testbed.synthetic import ct_series
from tests.web.conftest import PATIENT_A, PATIENT_B

pytestmark = pytest.mark.slow


def _client(site, token: str) -> DICOMwebClient:
    return DICOMwebClient(f"{site.base}/dicomweb", headers={"Authorization": f"Bearer {token}"})


def _uids(results: list[dict]) -> set[str]:
    return {r["0020000D"]["Value"][0] for r in results}


def _body(part10: bytes) -> bytes:
    """The dataset after the file meta group (whose length its first element gives)."""
    group_length = int.from_bytes(part10[140:144], "little")
    return part10[144 + group_length :]


def test_each_study_has_its_encrypted_summary_from_its_first_instance(site):
    """Written as the study arrived, before any search: the first search reads no instance."""
    app = open_appliance(site.home)
    try:
        with app.session() as session:
            rows = session.exec(select(StudySummary, Study).where(StudySummary.study_pk == Study.id)).all()
            summaries = {
                study.study_uid: study_summary.unseal(app.fields, row.attributes_enc) for row, study in rows
            }
    finally:
        app.close()
    first = site.study_a[0]
    assert summaries[first.StudyInstanceUID]["00100020"]["Value"] == [first.PatientID]
    assert site.study_b[0].StudyInstanceUID in summaries
    assert first.PatientID.encode() not in b"".join(row.attributes_enc for row, _ in rows)


def test_a_clinician_limited_to_a_source_sees_and_reads_only_its_studies(site):
    token = site.person("ward-a-doctor", Role.CLINICIAN, sources=["ward-a"]).token()
    client = _client(site, token)
    study_a, study_b = site.study_a[0].StudyInstanceUID, site.study_b[0].StudyInstanceUID
    assert _uids(client.search_for_studies()) == {study_a}
    assert len(client.retrieve_study(study_a)) == 3
    with pytest.raises(requests.HTTPError) as refused:
        client.retrieve_study(study_b)  # its UIDs guessed: refused, and recorded
    assert refused.value.response.status_code == 403
    headers = {"Authorization": f"Bearer {token}"}
    direct = httpx.get(f"{site.base}/dicomweb/studies/{study_b}", headers=headers)
    assert direct.status_code == 403 and "break-glass" in direct.json()["detail"]

    grant = httpx.post(
        f"{site.base}/api/break-glass",
        headers=headers,
        json={
            "study_uid": study_b,
            "reason_code": "emergency-care",
            "reason_text": "unconscious in ED, prior CT",
        },
    )
    assert grant.status_code == 201
    assert len(client.retrieve_study(study_b)) == 2  # for the time granted
    app = open_appliance(site.home)
    try:
        with app.session() as session:
            session.exec(update(BreakGlass).values(expires_at=utcnow() - timedelta(seconds=1)))
            session.commit()
    finally:
        app.close()
    assert httpx.get(f"{site.base}/dicomweb/studies/{study_b}", headers=headers).status_code == 403

    events = _events(site)
    denied = [e for e in events if e["event_id"] == "110103" and e["outcome"] == 8]
    assert any(o["id"] == study_b for e in denied for o in e["objects"])
    alerts = [e for e in events if e["event_id"] == "110113" and e["type"] == "Emergency Override Started"]
    assert alerts and alerts[-1]["participants"][0]["user_id"] == "ward-a-doctor"
    assert "unconscious" not in json.dumps(alerts[-1])  # the reason's text stays in the grant (syslog-bound)
    reads = [e for e in events if e["event_id"] == "110103" and e["outcome"] == 0]
    read_objects = {(o["kind"], o["id"]) for e in reads for o in e["objects"]}
    assert ("patient", site.study_a[0].PatientID) in read_objects and ("study", study_a) in read_objects
    queries = [e for e in events if e["event_id"] == "110112"]
    assert queries and queries[-1]["participants"][0]["role"] == "clinician"


def test_auditors_review_break_glass_grants(site):
    doctor = site.person("night-doctor", Role.CLINICIAN, sources=["ward-a"])
    auditor = site.person("review-auditor", Role.AUDITOR)
    study_b = site.study_b[0].StudyInstanceUID
    grant = httpx.post(
        f"{site.base}/api/break-glass",
        headers={"Authorization": f"Bearer {doctor.token()}"},
        json={
            "study_uid": study_b,
            "reason_code": "patient-safety",
            "reason_text": "transfer from ward b at night",
        },
    ).json()
    headers = {"Authorization": f"Bearer {auditor.token()}"}
    queue = httpx.get(f"{site.base}/api/break-glass", headers=headers).json()
    assert [g["id"] for g in queue if g["username"] == "night-doctor"] == [grant["id"]]
    reviewed = httpx.post(
        f"{site.base}/api/break-glass/{grant['id']}/review", headers=headers, json={"comment": "justified"}
    )
    assert reviewed.status_code == 200 and reviewed.json()["reviewed_by"] == "review-auditor"
    queue = httpx.get(f"{site.base}/api/break-glass", headers=headers).json()
    assert grant["id"] not in [g["id"] for g in queue]


def test_wado_returns_the_instances_byte_identical_to_what_was_sent(site):
    client = _client(site, site.person("reader", Role.CLINICIAN).token())
    for sent in site.study_a:
        got = client.retrieve_instance(
            sent.StudyInstanceUID, sent.SeriesInstanceUID, sent.SOPInstanceUID,
            media_types=(("application/dicom", "*"),),
        )  # fmt: skip
        buffer = BytesIO()
        got.save_as(buffer, enforce_file_format=True)
        assert _body(buffer.getvalue()) == encode(sent, False, True)
    metadata = client.retrieve_series_metadata(
        site.study_a[0].StudyInstanceUID, site.study_a[0].SeriesInstanceUID
    )
    assert sorted(m["00200013"]["Value"][0] for m in metadata) == [1, 2, 3]
    frames = client.retrieve_instance_frames(
        site.study_a[0].StudyInstanceUID,
        site.study_a[0].SeriesInstanceUID,
        site.study_a[0].SOPInstanceUID,
        [1],
    )
    assert frames[0] == site.study_a[0].PixelData


def _events(site) -> list[dict]:
    """The audit log as written so far by the running appliance (each event is durable when emitted)."""
    app = open_appliance(site.home)
    try:
        return list(read_entries(app.settings.path(app.settings.audit.directory), app.audit_key))
    finally:
        app.close()


# As a query string, written as a user would type it (``*``, ``?`` and ``^`` as they are): Orthanc
# does not decode a percent-encoded ``*`` (``%2A``, as dicomweb-client and requests send it) and then
# matches nothing, so both servers get the same raw query string here.
QUERIES = [
    "",
    "PatientName=Oakenshott*",
    "PatientName=oakenshott^philippa",
    "PatientID=PID-B-90311",
    "StudyDate=20250101-20251231",
    "StudyDate=-20251231",
    "StudyDate=20260315",
    "AccessionNumber=ACC2*",
    "ModalitiesInStudy=CT",
    "PatientName=B?indlecombe*",
    "PatientName=Nobody*",
    "00100020=PID-A-55120",
]


def _search(url: str, token: str | None = None) -> set[str]:
    request = urllib.request.Request(url, headers={"Accept": "application/dicom+json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return _uids(json.loads(body)) if body else set()


def test_qido_matches_as_orthanc_does(site, tmp_path):
    orthanc = OrthancProcess(tmp_path / "orthanc").start(
        {"Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"], "DicomWeb": {"Enable": True}}
    )
    try:
        ae = AE(ae_title="SCU")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title="ORTHANC")
        for dataset in site.study_a + site.study_b:
            assert assoc.send_c_store(dataset).Status == 0
        assoc.release()
        token = site.person("qido-compare", Role.CLINICIAN).token()
        answers = []
        for query in QUERIES:
            ours = _search(f"{site.base}/dicomweb/studies?{query}", token)
            assert ours == _search(f"http://127.0.0.1:{orthanc.http_port}/dicom-web/studies?{query}"), query
            answers.append(len(ours))
        assert answers == [2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 0, 1]  # the queries do tell the studies apart
        paged = _client(site, token).search_for_studies(limit=1, offset=1)
        assert len(paged) == 1
    finally:
        orthanc.stop()


def test_series_and_instance_searches_and_a_clinician_limited_to_a_modality(site):
    client = _client(site, site.person("series-reader", Role.CLINICIAN).token())
    first = site.study_a[0]
    (series,) = client.search_for_series(first.StudyInstanceUID)
    assert series["0020000E"]["Value"] == [first.SeriesInstanceUID] and series["00201209"]["Value"] == [3]
    assert series["0008103E"]["Value"] == ["synthetic abdomen"]
    instances = client.search_for_instances(first.StudyInstanceUID, first.SeriesInstanceUID)
    assert sorted(i["00200013"]["Value"][0] for i in instances) == [1, 2, 3]
    one = client.search_for_instances(first.StudyInstanceUID, search_filters={"InstanceNumber": "2"})
    assert [i["00080018"]["Value"][0] for i in one] == [site.study_a[1].SOPInstanceUID]
    plain = client.search_for_studies(search_filters={"PatientID": first.PatientID})
    assert "00081030" not in plain[0]  # not a default attribute
    asked = client.search_for_studies(
        search_filters={"PatientID": first.PatientID}, fields=["StudyDescription", "BodyPartExamined"]
    )
    assert "00100010" in asked[0]
    mr_only = _client(site, site.person("mr-reader", Role.CLINICIAN, modalities=["MR"]).token())
    assert mr_only.search_for_studies() == []


def test_an_instance_stored_implicit_is_sent_explicit_unless_asked_as_stored(site, tmp_path):
    (dataset,) = ct_series(1, PATIENT_A, size=16, seed=11)  # a study of its own
    ae = AE(ae_title="SCU")
    ae.add_requested_context(CTImageStorage, ImplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", site.appliance.dicom_port, ae_title="APPLIANCE")
    assert assoc.send_c_store(dataset).Status == 0
    assoc.release()
    token = site.person("syntax-reader", Role.CLINICIAN).token()
    url = (
        f"{site.base}/dicomweb/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )
    for accept, syntax in (
        ('multipart/related; type="application/dicom"', ExplicitVRLittleEndian),
        ('multipart/related; type="application/dicom"; transfer-syntax=*', ImplicitVRLittleEndian),
    ):
        response = httpx.get(url, headers={"Authorization": f"Bearer {token}", "Accept": accept})
        part = response.content.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]
        got = dcmread(BytesIO(part))
        assert got.file_meta.TransferSyntaxUID == syntax and got.PixelData == dataset.PixelData
    refused = httpx.get(
        url,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50',
        },
    )
    assert refused.status_code == 406 and "transfer-syntax=*" in refused.json()["detail"]


def test_orthanc_pulls_a_study_from_the_appliance_over_dicomweb(site, tmp_path):
    token = site.person("orthanc-pull", Role.CLINICIAN).token()
    orthanc = OrthancProcess(tmp_path / "puller").start(
        {
            "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
            "DicomWeb": {
                "Enable": True,
                "Servers": {
                    "appliance": {
                        "Url": f"{site.base}/dicomweb/",
                        "HttpHeaders": {"Authorization": f"Bearer {token}"},
                    }
                },
            },
        }
    )
    try:
        study = site.study_a[0].StudyInstanceUID
        response = httpx.post(
            f"http://127.0.0.1:{orthanc.http_port}/dicom-web/servers/appliance/retrieve",
            json={"Resources": [{"Study": study}]},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert len(orthanc.instances()) == 3
    finally:
        orthanc.stop()


def test_stow_stores_as_c_store_does_and_answers_each_instance(site):
    """Runs after the searches above (a third study appears here)."""
    client = _client(site, site.person("stow-user", Role.CLINICIAN).token())
    sent = ct_series(2, PATIENT_A, size=16, seed=5)
    answer = client.store_instances(sent)  # the response, as a pydicom Dataset
    stored = [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence]
    assert stored == [d.SOPInstanceUID for d in sent] and "FailedSOPSequence" not in answer
    got = client.retrieve_instance(
        sent[0].StudyInstanceUID, sent[0].SeriesInstanceUID, sent[0].SOPInstanceUID,
        media_types=(("application/dicom", "*"),),
    )  # fmt: skip
    buffer = BytesIO()
    got.save_as(buffer, enforce_file_format=True)
    assert _body(buffer.getvalue()) == encode(sent[0], False, True)

    changed = ct_series(1, PATIENT_B, size=16, seed=6)[0]
    changed.SOPInstanceUID = sent[1].SOPInstanceUID  # the same UID, another patient: a conflict
    fresh = ct_series(1, PATIENT_A, size=16, seed=7)[0]
    headers = dict(client._session.headers)
    mixed = _stow(site, headers, [_file(fresh), _file(changed)])
    assert mixed.status_code == 202
    assert [f["00081197"]["Value"][0] for f in mixed.json()["00081198"]["Value"]] == [0xA9D0]
    assert [r["00081155"]["Value"][0] for r in mixed.json()["00081199"]["Value"]] == [fresh.SOPInstanceUID]

    garbage = b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00\xff\xff\x00\x00"
    refused = _stow(site, headers, [garbage])
    assert refused.status_code == 409
    assert refused.json()["00081198"]["Value"][0]["00081197"]["Value"][0] == 0xC210
    wrong_type = httpx.post(
        f"{site.base}/dicomweb/studies",
        content=b"{}",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert wrong_type.status_code == 415


def _file(dataset) -> bytes:
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _stow(site, headers: dict, parts: list[bytes]) -> httpx.Response:
    boundary = "stow-test-boundary"
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
            for part in parts
        )
        + f"--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return httpx.post(
        f"{site.base}/dicomweb/studies", content=body, headers={**headers, "Content-Type": content_type}
    )


def test_no_patient_value_in_any_log_line(site):
    """After the searches (by name, ID, date), reads and break-glass reasons above: the appliance's
    log holds none of the patients' values (the audit log holds them, encrypted)."""
    log = site.appliance.log_file.read_text()
    assert "dicomweb" in log.lower() or "HTTP" in log  # the log is the one the appliance wrote
    for patient in (PATIENT_A, PATIENT_B):
        for value in (*patient.name.split("^"), patient.patient_id, patient.birth_date):
            assert value.lower() not in log.lower(), value
    for secret in ("unconscious in ED", "transfer from ward b"):
        assert secret not in log
