"""Sending to a real PACS (Debian's Orthanc): direct, and through the retry queue."""

from __future__ import annotations

import json

import httpx
import pytest
from pydicom import dcmread

from testbed.processes import OrthancProcess, run_cli, wait_for
from testbed.synthetic import ct_series, write_series

pytestmark = pytest.mark.slow


@pytest.fixture
def orthanc(tmp_path):
    pacs = OrthancProcess(tmp_path / "orthanc")
    yield pacs
    pacs.stop()


def add_pacs(home, orthanc) -> None:
    run_cli(
        home,
        "destinations",
        "add",
        "pacs",
        "--ae",
        "ORTHANC",
        "--host",
        "127.0.0.1",
        "--port",
        str(orthanc.dicom_port),
    )


def test_send_echo_and_deliver(home, tmp_path, orthanc, patient):
    orthanc.start()
    add_pacs(home, orthanc)
    assert "success" in run_cli(home, "destinations", "echo", "pacs").stdout
    files = write_series(tmp_path / "in", ct_series(4, patient))
    result = run_cli(home, "send", *map(str, files), "--to", "pacs")
    assert "sent 4 instance(s)" in result.stdout
    assert len(orthanc.instances()) == 4
    (job,) = json.loads(run_cli(home, "sends", "list", "--json").stdout)
    assert job["state"] == "done" and job["attempts"] == 1


def test_retry_queue_delivers_once_the_pacs_comes_up(appliance, home, tmp_path, orthanc, patient):
    add_pacs(home, orthanc)
    echo = run_cli(home, "destinations", "echo", "pacs", check=False)
    assert echo.returncode != 0 and "failed" in echo.stderr
    files = write_series(tmp_path / "in", ct_series(3, patient))
    result = run_cli(home, "send", *map(str, files), "--to", "pacs")
    assert "failed" in result.stderr and "stays queued" in result.stderr
    (job,) = json.loads(run_cli(home, "sends", "list", "--json").stdout)
    # queued: pending, or running when the appliance's send worker is retrying at that moment
    assert job["state"] in ("pending", "running") and job["attempts"] >= 1

    orthanc.start()  # the running appliance's send worker retries with backoff
    wait_for(lambda: len(orthanc.instances()) == 3, 30, "delivery through the retry queue", interval=0.5)
    wait_for(
        lambda: json.loads(run_cli(home, "sends", "list", "--json").stdout)[0]["state"] == "done",
        15,
        "job marked done",
    )
    sent = {dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
    received = {
        httpx.get(f"http://127.0.0.1:{orthanc.http_port}/instances/{i}").json()["MainDicomTags"][
            "SOPInstanceUID"
        ]
        for i in orthanc.instances()
    }
    assert received == sent


def test_failed_send_stays_visible_and_can_be_retried(home, tmp_path, orthanc, patient):
    add_pacs(home, orthanc)
    files = write_series(tmp_path / "in", ct_series(1, patient))
    result = run_cli(home, "send", str(files[0]), "--to", "pacs", env={"APPLIANCE_SEND__MAX_ATTEMPTS": "1"})
    assert "no attempts left" in result.stderr
    (job,) = json.loads(run_cli(home, "sends", "list", "--json").stdout)
    assert job["state"] == "failed" and job["last_error"]
    orthanc.start()
    run_cli(home, "sends", "retry", str(job["job"]))
    assert json.loads(run_cli(home, "sends", "list", "--json").stdout)[0]["state"] == "pending"


def test_send_checks_the_destination_first_skips_non_dicom_and_names_the_real_cause(
    home, tmp_path, orthanc, patient
):
    files = write_series(tmp_path / "in", ct_series(2, patient))
    (tmp_path / "in" / "notes.txt").write_text("not DICOM")
    nowhere = run_cli(home, "send", str(tmp_path / "in"), "--to", "nope", check=False)
    assert nowhere.returncode == 1 and "no destination named nope" in nowhere.stderr
    assert json.loads(run_cli(home, "studies", "--json").stdout) == []  # nothing stored for it

    add_pacs(home, orthanc)  # Orthanc not started: nothing listens on its port
    result = run_cli(
        home, "send", str(tmp_path / "in"), "--to", "pacs", env={"APPLIANCE_SEND__MAX_ATTEMPTS": "1"}
    )
    assert "skipped" in result.stderr and "notes.txt" in result.stderr
    assert "cannot connect (Connection refused)" in result.stderr
    (series,) = json.loads(run_cli(home, "studies", "--json").stdout)
    assert series["state"] == "complete" and series["instances"] == len(files)  # never an inference job
    jobs = json.loads(run_cli(home, "jobs", "--json").stdout)
    assert jobs == []
