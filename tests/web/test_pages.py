"""The web pages in a real browser (Chromium driven by Playwright), end to end: storescu sends a CT
series, the demo model reads it, a clinician signs in for the first time (enrolling the one-time
code from the QR code), finds the study on the worklist with its AI result, opens it and accepts
the result, then sees the SEG over the images in OHIF (its pixels checked on the screenshot); a
researcher who opens the same study gets the denied page; all of it is in the audit log. The other
roles' pages (audit search and proof, releases, console) are opened as their people use them."""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pyotp
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlmodel import select

from anonymizer.release import dsse
from appliance.access import accounts
from appliance.compliance.findings import PAYLOAD_TYPE
from appliance.context import open_appliance
from appliance.db.tables import Decision, InferenceResult, ResultAssessment, Role
from appliance.home import init_home
from testbed.dcmtk import storescu
from testbed.phantom import make_phantom
from testbed.processes import ApplianceProcess, OrthancProcess, local_http, run_cli, wait_for
from testbed.synthetic import FakePatient, phantom_series, write_series
from tests.support.browser import SCREENSHOTS, chromium, screenshot
from tests.support.environments import INFERENCE
from tests.support.inspect import audit_events
from tests.support.people import Person

pytestmark = pytest.mark.slow
PATIENT = FakePatient("Haverford^Cordelia", "PID-77031", "19620911")
NEW_PASSWORD = "correct horse battery staple"


def _pixels(png: Path) -> np.ndarray:
    return np.asarray(Image.open(png).convert("RGB")).astype(int)


def overlay_pixels(png: Path) -> int:
    """Pixels of the segment's colour (OHIF draws the first segment red); the CT is grey."""
    red, green, blue = np.moveaxis(_pixels(png), 2, 0)
    return int(((red > 60) & (red > green + 25) & (red > blue + 25)).sum())


class Account:
    def __init__(self, home: Path, username: str, role: Role) -> None:
        app = open_appliance(home)
        try:
            enrolment = accounts.add_user(app, "test", username, role)
        finally:
            app.close()
        self.username, self.password = username, enrolment.password
        self.totp = pyotp.TOTP(parse_qs(urlparse(enrolment.totp_uri).query)["secret"][0])
        self.used: set[int] = set()

    def code(self) -> str:
        """A code of a time step not used yet (each is accepted once)."""
        while int(time.time() // 30) in self.used:
            time.sleep(1)
        step = int(time.time() // 30)
        self.used.add(step)
        return self.totp.at(step * 30)

    def first_sign_in(self, page, base: str, target: str) -> None:  # type: ignore[no-untyped-def]
        page.goto(base + target)
        assert page.url.startswith(base + "/login")  # not signed in: to the sign-in page, then back
        page.get_by_label("User name").fill(self.username)
        page.get_by_label("Password", exact=True).fill(self.password)
        page.get_by_role("button", name="Sign in").click()
        assert (
            page.get_by_role("img", name="QR code of your one-time code enrolment").locator("svg").count()
            == 1
        )
        screenshot(page, f"enrol-{self.username}")
        page.get_by_role("textbox", name="One-time code").fill(self.code())
        page.get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Save and sign in").click()


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    orthanc = OrthancProcess(tmp_path_factory.mktemp("orthanc")).start()
    yield orthanc
    orthanc.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, pacs: OrthancProcess):  # type: ignore[no-untyped-def]
    """One appliance for the module (its home, its process): the demo model has read a phantom
    series sent by storescu, its results going to the PACS. Each test signs in its own people."""
    root = tmp_path_factory.mktemp("pages")
    home = root / "home"
    umask = os.umask(0o077)
    try:
        init_home(home)
    finally:
        os.umask(umask)
    run_cli(home, "sources", "add", "local-scu", "--ae", "SCU", "--host", "127.0.0.1")
    run_cli(home, "destinations", "add", "pacs", "--ae", "ORTHANC", "--host", "127.0.0.1",
            "--port", str(pacs.dicom_port), "--results")  # fmt: skip
    appliance = ApplianceProcess(home, root / "appliance.out", INFERENCE).start()
    try:
        phantom = make_phantom((96, 80, 24), (2.5, 2.5, 5.0), seed=11, lesion_count=2)
        datasets = phantom_series(phantom.hu, (2.5, 2.5, 5.0), patient=PATIENT)
        assert storescu(appliance.dicom_port, write_series(root / "in", datasets)).returncode == 0
        wait_for(lambda: "done" in run_cli(home, "jobs").stdout, 180, "the demo model's result")
        yield home, appliance, str(datasets[0].StudyInstanceUID)
    finally:
        appliance.stop()


def _assessments_in(pacs: OrthancProcess) -> list[dict]:
    """The Basic Text SRs the PACS holds, as Orthanc's tags."""
    found = []
    for instance in pacs.instances():
        tags = (
            local_http().get(f"http://127.0.0.1:{pacs.http_port}/instances/{instance}/tags?simplify").json()
        )
        if tags.get("SOPClassUID") == "1.2.840.10008.5.1.4.1.1.88.11":
            found.append(tags)
    return found


def test_a_clinician_reviews_an_ai_result_and_a_researcher_is_refused(site, pacs: OrthancProcess) -> None:
    home, appliance, _ = site
    base = f"http://127.0.0.1:{appliance.http_port}"
    clinician = Account(home, "dr-ada", Role.CLINICIAN)
    researcher = Account(home, "rex", Role.RESEARCHER)
    with chromium() as browser:
        page = browser.new_page()
        clinician.first_sign_in(page, base, "/worklist")
        assert page.url == base + "/worklist"
        row = page.get_by_role("row").filter(has_text="Haverford")
        assert row.count() == 1
        assert row.locator("[data-cell=state]").inner_text() == "done"
        assert row.locator("[data-cell=model]").inner_text().startswith("lesion_ct_segmentation")
        assert "mL" in row.locator("[data-cell=findings]").inner_text()
        screenshot(page, "worklist")
        row.get_by_role("link", name="Haverford^Cordelia", exact=True).click()
        assert page.get_by_role("heading", level=1).inner_text().startswith("Haverford")
        study_url = page.url
        page.get_by_role("button", name="Accept").click()
        assert page.get_by_role("status").inner_text().startswith("Assessment: accepted by dr-ada")
        screenshot(page, "study-accepted")
        page.get_by_role("button", name="Reject").click()  # no reason chosen: refused, nothing kept
        assert (
            page.get_by_role("heading", name="Not done").is_visible() and "needs a reason" in page.content()
        )
        page.goto(study_url)
        assert page.get_by_role("status").inner_text().startswith("Assessment: accepted by dr-ada")

        # one click from the worklist: OHIF on the appliance's DICOMweb, the AI's SEG over the images
        page.goto(base + "/worklist")
        page.get_by_role("link", name="View the images of Haverford^Cordelia with the AI result").click()
        page.get_by_role("button", name="Skip all").click()  # OHIF's guided tour, shown at a first visit
        wait_for(lambda: overlay_pixels(screenshot(page, "viewer")) > 200, 90, "the SEG drawn over the CT")
        image = _pixels(SCREENSHOTS / "viewer.png")
        assert (image.max(axis=2) > 60).sum() > 100_000  # the CT itself is drawn, not only the overlay

        other = browser.new_context().new_page()
        researcher.first_sign_in(other, base, "/datasets")
        denied = other.goto(study_url)
        assert denied.status == 403
        assert other.get_by_role("heading", name="Not allowed").is_visible()
        screenshot(other, "denied")

    study = study_url.rsplit("/", 1)[1]
    events = audit_events(home)
    reads = [e for e in events if e["event_id"] == "110103" and any(o["id"] == study for o in e["objects"])]
    assert [e["outcome"] for e in reads if e["type"] == "Study page"][:1] == [0]  # the clinician's read
    refused = [e for e in reads if e["outcome"] == 8]
    assert refused and refused[-1]["participants"][0]["user_id"] == "rex"
    accepted = [e for e in events if e["event_id"] == "110110" and e["type"] == "AI Result Assessment"]
    assert len(accepted) == 1 and accepted[0]["participants"][0]["user_id"] == "dr-ada"

    # the PACS gets the assessment as an SR that names the AI's SEG and SR as its evidence
    wait_for(lambda: _assessments_in(pacs), 60, "the assessment SR in the PACS")
    (report,) = _assessments_in(pacs)
    decision = next(item for item in report["ContentSequence"] if item["ValueType"] == "CODE")
    assert decision["ConceptCodeSequence"][0]["CodeMeaning"] == "accepted"
    evidence = report["CurrentRequestedProcedureEvidenceSequence"][0]
    assert evidence["StudyInstanceUID"] == study and len(evidence["ReferencedSeriesSequence"]) == 2

    # the accepted result goes with its study into a release that asks for accepted results
    released = run_cli(
        home, "datasets", "release", "reviewed", "--to", "local", "--with-results", "accepted", "--json"
    )
    assert json.loads(released.stdout)["instances"] == 24 + 2  # the 24 slices, the SEG and the SR


def _corrected(seg: Dataset, description: str) -> Dataset:
    """A clinician's edit of the AI's SEG: half its voxels erased, saved as a new SEG of its own."""
    corrected = copy.deepcopy(seg)
    pixels = bytearray(corrected.PixelData)
    pixels[: len(pixels) // 2] = bytes(len(pixels) // 2)
    corrected.PixelData = bytes(pixels)
    corrected.SOPInstanceUID, corrected.SeriesInstanceUID = generate_uid(), generate_uid()
    corrected.file_meta.MediaStorageSOPInstanceUID = corrected.SOPInstanceUID
    corrected.SeriesDescription, corrected.SeriesNumber = description, 9101
    return corrected


def _newest_assessment(home: Path) -> ResultAssessment:
    app = open_appliance(home)
    try:
        with app.session() as session:
            return session.exec(select(ResultAssessment).order_by(ResultAssessment.id.desc())).first()  # type: ignore[attr-defined, return-value]
    finally:
        app.close()


def test_a_clinician_corrects_an_ai_result_by_upload_and_from_the_viewer(site, tmp_path: Path) -> None:
    """A correction uploaded on the study page, then one saved over STOW-RS as OHIF's segmentation
    mode saves: each is kept as the result's assessment, and the newest is the case's label."""
    home, appliance, study = site
    base = f"http://127.0.0.1:{appliance.http_port}"
    app = open_appliance(home)
    try:
        with app.session() as session:
            result = session.exec(select(InferenceResult)).one()
        stower = Person.add(app, base, "dr-stow", Role.CLINICIAN)
    finally:
        app.close()
    client = DICOMwebClient(f"{base}/dicomweb", headers={"Authorization": f"Bearer {stower.token()}"})
    (series,) = [s for s in client.search_for_series(study) if s["00080060"]["Value"] == ["SEG"]]
    ai_seg = client.retrieve_instance(study, series["0020000E"]["Value"][0], result.seg_uid)
    uploaded = _corrected(ai_seg, "Corrected on the study page")
    uploaded.save_as(tmp_path / "corrected.dcm", enforce_file_format=True)
    ai_seg.save_as(tmp_path / "ai.dcm", enforce_file_format=True)

    clinician = Account(home, "dr-cy", Role.CLINICIAN)
    with chromium() as browser:
        page = browser.new_page()
        clinician.first_sign_in(page, base, f"/studies/{study}")
        page.get_by_label("Corrected SEG file").set_input_files(tmp_path / "ai.dcm")
        page.get_by_role("button", name="Upload the correction").click()
        refusal = page.get_by_role("alert")
        wait_for(lambda: "the AI's own result" in refusal.inner_text(), 30, "the refusal of the AI's SEG")
        page.get_by_label("Corrected SEG file").set_input_files(tmp_path / "corrected.dcm")
        page.get_by_role("button", name="Upload the correction").click()
        status = page.get_by_role("status")
        shown = "Assessment: corrected by dr-cy"
        wait_for(lambda: status.inner_text().startswith(shown), 30, "the correction")
        assert uploaded.SOPInstanceUID in status.inner_text()
        screenshot(page, "study-corrected")
    assert _newest_assessment(home).corrected_seg_uid == uploaded.SOPInstanceUID

    # OHIF saves an edited segmentation with STOW-RS: the same request, from dicomweb-client
    saved = _corrected(uploaded, "Corrected in the viewer")
    client.store_instances([saved])
    newest = _newest_assessment(home)
    assert (newest.decision, newest.username) == (Decision.CORRECTED, "dr-stow")
    assert newest.corrected_seg_uid == saved.SOPInstanceUID
    assessed = [e for e in audit_events(home) if e["type"] == "AI Result Assessment"]
    corrections = [e for e in assessed if "corrected" in e["description"]]
    assert [e["participants"][0]["user_id"] for e in corrections] == ["dr-cy", "dr-stow"]

    # the newest correction, not the AI's SEG nor the earlier correction, labels the case for research
    released = run_cli(
        home, "datasets", "release", "corrected", "--to", "local", "--with-results", "accepted", "--json"
    )
    assert json.loads(released.stdout)["instances"] == 24 + 1
    shown = json.loads(run_cli(home, "datasets", "show", "corrected").stdout)
    modalities = [f["modality"] for f in shown["statement"]["predicate"]["files"]]
    assert (modalities.count("SEG"), modalities.count("SR")) == (1, 0)


def test_auditors_researchers_and_admins_have_their_pages(site) -> None:
    home, appliance, study = site
    base = f"http://127.0.0.1:{appliance.http_port}"
    run_cli(home, "datasets", "release", "demo", "--to", "local")
    people = {
        role: Account(home, f"{role.value}-1", role) for role in (Role.AUDITOR, Role.RESEARCHER, Role.ADMIN)
    }
    with chromium() as browser:
        auditor = browser.new_context().new_page()
        people[Role.AUDITOR].first_sign_in(auditor, base, "/audit")
        auditor.get_by_label("Study UID").fill(study)
        auditor.get_by_role("button", name="Search").click()
        assert auditor.get_by_role("cell", name="DICOM Instances Transferred").count() >= 1
        auditor.get_by_role("button", name="at", exact=True).click()  # sortable by every column
        assert auditor.locator("th[aria-sort]").inner_text() == "at"
        assert study not in auditor.url  # the search (a study, a patient's ID) never goes in the URL
        screenshot(auditor, "audit")
        with auditor.expect_download() as download:
            auditor.get_by_role("button", name="Export as CSV").click()
        exported = Path(download.value.path()).read_text()
        assert exported.startswith("index,at,event,") and study in exported
        auditor.get_by_role("link", name="Integrity").click()
        assert auditor.get_by_role("status").inner_text().startswith("Verified:")
        auditor.get_by_label("Entry number").fill("0")
        auditor.get_by_role("button", name="Prove its inclusion").click()
        assert '"leaf_index": 0' in auditor.locator("pre").inner_text()
        screenshot(auditor, "audit-integrity")
        auditor.get_by_role("link", name="Compliance").click()
        auditor.get_by_role("button", name="Run the checks now").click()
        assert "checks failed" in auditor.get_by_role("status").inner_text()
        assert auditor.locator("tr[data-check]").count() == 10
        screenshot(auditor, "compliance")
        with auditor.expect_download() as download:
            auditor.get_by_role("link", name="Download the signed report").click()
        public_key = load_pem_public_key((home / "audit-signing-key.pub").read_bytes())
        signed = dsse.verify(Path(download.value.path()).read_bytes(), [public_key], PAYLOAD_TYPE)  # type: ignore[list-item]
        assert json.loads(signed)["trigger"] == "web:auditor-1"
        refused = auditor.goto(base + "/worklist")
        assert refused.status == 403  # an auditor sees no worklist

        researcher = browser.new_context().new_page()
        people[Role.RESEARCHER].first_sign_in(researcher, base, "/datasets")
        row = researcher.get_by_role("row").filter(has_text="demo v1")
        assert "25 instances" not in row.inner_text() and "24 instances" in row.inner_text()
        assert (
            "research pull " in row.inner_text()
            and "BEGIN PUBLIC KEY" in researcher.locator("pre").inner_text()
        )
        screenshot(researcher, "datasets")
        assert researcher.goto(base + "/compliance").status == 403  # a researcher sees no compliance report
        researcher.goto(base + "/datasets")
        researcher.get_by_label("Dataset name").fill("ct-lesions")
        researcher.get_by_label("Modalities").fill("CT")
        researcher.get_by_label("Purpose").fill("retraining the lesion model")
        researcher.get_by_role("button", name="Ask for this release").click()
        request_row = researcher.locator("tr[data-request]").filter(has_text="ct-lesions")
        assert request_row.locator("[data-cell=state]").inner_text() == "pending"
        screenshot(researcher, "datasets-request")

        admin = browser.new_context().new_page()
        people[Role.ADMIN].first_sign_in(admin, base, "/admin")
        assert admin.get_by_role("cell", name="lesion_ct_segmentation", exact=True).count() == 1
        assert admin.get_by_role("columnheader", name="Validation").count() == 1  # models validate's
        admin.get_by_role("button", name="Roll back lesion_ct_segmentation").click()  # as the CLI's, refused
        assert "has no earlier version to roll back to" in admin.locator("body").inner_text()
        admin.goto(base + "/admin")
        assert admin.get_by_role("cell", name="local-scu", exact=True).count() == 1
        screenshot(admin, "admin")
        assert "retraining the lesion model" in admin.locator("article[data-request]").inner_text()
        admin.get_by_role("button", name="Approve request 1").click()
        assert admin.locator("article[data-request]").count() == 0  # decided: off the queue
        admin.get_by_role("link", name="Compliance").click()
        assert admin.get_by_role("heading", name="Report 1").is_visible()  # the auditor's, kept

        def released() -> bool:
            researcher.reload()
            state = request_row.locator("[data-cell=state]").inner_text()
            return state.startswith("released (v1) by admin-1")

        wait_for(released, 120, "the approved request's release")
        assert researcher.get_by_role("row").filter(has_text="ct-lesions v1").count() == 1
    assert any(e["event_id"] == "110101" and "audit page" in e["description"] for e in audit_events(home))
