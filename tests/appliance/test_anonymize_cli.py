"""``appliance anonymize``: offline, repeatable, with the home's secret or a key file."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from appliance.cli.anonymize import INCOMPLETE
from appliance.context import open_appliance
from appliance.security.pseudonym_map import PseudonymMap
from testbed.planted import PlantedPatient, patients, planted_ct, planted_sr
from testbed.processes import APPLIANCE, REPO, run_cli
from tests.support.inspect import audit_events


def _inputs(folder: Path) -> list[PlantedPatient]:
    people = patients(2)
    (folder / "sub").mkdir(parents=True)
    for person in people:
        for index in range(2):
            planted_ct(person, index).save_as(
                folder / "sub" / f"{person.family}-{index}.dcm", enforce_file_format=True
            )
    planted_sr(people[0]).save_as(folder / f"{people[0].family}-report.dcm", enforce_file_format=True)
    (folder / "README.txt").write_text("not DICOM")
    return people


def _anonymize(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "APPLIANCE_HOME"}
    return subprocess.run(
        [*APPLIANCE, "anonymize", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_key_file_run_is_offline_and_byte_identical_when_repeated(tmp_path: Path) -> None:
    people = _inputs(tmp_path / "in")
    key = tmp_path / "pseudonymisation.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    first = _anonymize(
        str(tmp_path / "in"),
        str(tmp_path / "out1"),
        "--key-file",
        str(key),
        "--report",
        str(tmp_path / "r.jsonl"),
        "--workers",
        "2",  # two processes against one below: the same bytes
    )
    assert first.returncode == 0, first.stderr
    assert "5 de-identified, 0 quarantined, 0 failed, 1 not DICOM (profile research)" in first.stdout
    second = _anonymize(
        str(tmp_path / "in"), str(tmp_path / "out2"), "--key-file", str(key), "--workers", "1"
    )
    assert second.returncode == 0, second.stderr
    out1, out2 = _tree(tmp_path / "out1"), _tree(tmp_path / "out2")
    assert out1 == out2 and len(out1) == 5
    # named by new UIDs, grouped by study and series: no input name (which may hold PHI) survives
    assert all(len(Path(name).parts) == 3 and name.startswith("2.25.") for name in out1)
    everything = b"".join(out1.values()).lower() + "".join(out1).lower().encode()
    planted = [s for person in people for s in person.strings]
    assert [s for s in planted if s.lower().encode() in everything] == []
    reports = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(reports) == 6 and sum(r["skipped"] for r in reports) == 1
    assert [r["input"] for r in reports] == [1, 2, 3, 4, 5, 6] and not any("source" in r for r in reports)
    report_text = (tmp_path / "r.jsonl").read_text().lower()
    # the report names attributes and input numbers, never a value or an input file name
    assert not [s for s in planted if s.lower() in report_text]


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    key = tmp_path / "key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    result = _anonymize(str(tmp_path / "in"), str(tmp_path / "out"), "--key-file", str(key))
    assert (
        result.returncode == 1 and "readable by others" in result.stderr and "Traceback" not in result.stderr
    )


def test_home_run_keeps_the_pseudonym_map_encrypted_and_audits(home: Path, tmp_path: Path) -> None:
    people = _inputs(tmp_path / "in")
    run_cli(home, "anonymize", str(tmp_path / "in"), str(tmp_path / "out"), "--profile", "basic")
    again = run_cli(
        home, "anonymize", str(tmp_path / "in"), str(tmp_path / "out-again"), "--profile", "basic"
    )
    assert _tree(tmp_path / "out") == _tree(tmp_path / "out-again")  # the home's secret is stable
    database = b"".join(p.read_bytes() for p in home.rglob("*.db*"))
    assert b"SQLite format 3" in database
    assert not [s for person in people for s in (person.family, person.patient_id) if s.encode() in database]
    app = open_appliance(home)
    try:
        mapping = PseudonymMap(app)
        first = dcmread(next((tmp_path / "out").rglob("*.dcm")))
        link = mapping.lookup(str(first.PatientID))
        assert link is not None
        assert (link.patient_id, link.patient_name) in {(p.patient_id, p.name) for p in people}
    finally:
        app.close()
    events = [e for e in audit_events(home) if e["type"] == "De-identification"]
    assert len(events) == 2 and events[0]["description"].startswith("5 de-identified, 0 quarantined")
    assert "profile basic" in again.stdout


def test_a_configured_profile_is_used_by_name(home: Path, tmp_path: Path) -> None:
    _inputs(tmp_path / "in")
    original = dcmread(next((tmp_path / "in" / "sub").glob("*.dcm")))
    profiles = json.dumps({"trial": {"options": ["retain_uids", "retain_full_dates"]}})
    env = {"APPLIANCE_DEIDENTIFY__PROFILES": profiles}
    result = run_cli(
        home, "anonymize", str(tmp_path / "in"), str(tmp_path / "out"), "--profile", "trial", env=env
    )
    assert "(profile trial)" in result.stdout
    kept = {str(dcmread(p).StudyInstanceUID) for p in (tmp_path / "out").rglob("*.dcm")}
    assert str(original.StudyInstanceUID) in kept  # Retain UIDs
    assert all(dcmread(p).StudyDate == "20240305" for p in (tmp_path / "out").rglob("*.dcm"))  # full dates
    unknown = run_cli(
        home, "anonymize", str(tmp_path / "in"), str(tmp_path / "x"), "--profile", "nope", check=False
    )
    assert unknown.returncode == 1 and "no profile named 'nope'" in unknown.stderr


def test_corrupt_inputs_fail_and_no_output_replaces_another(tmp_path: Path) -> None:
    person = patients(1)[0]
    source = tmp_path / "in"
    source.mkdir()
    whole = source / "whole.dcm"
    planted_ct(person, 0).save_as(whole, enforce_file_format=True)
    data = whole.read_bytes()
    (source / "cut.dcm").write_bytes(data[:-1000])  # the same UID as whole.dcm, pixel data cut short
    (source / "garbage.dcm").write_bytes(data[:400] + bytes(range(256)) * 3)  # a DICM header, then noise
    outside = tmp_path / "outside.dcm"
    planted_ct(person, 1).save_as(outside, enforce_file_format=True)
    (source / "link.dcm").symlink_to(outside)  # leads out of the source
    key = tmp_path / "k.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)

    result = _anonymize(str(source), str(tmp_path / "out"), "--key-file", str(key), "--workers", "1")
    assert result.returncode == INCOMPLETE
    assert "1 de-identified, 0 quarantined, 3 failed" in result.stdout
    assert "cut short" in result.stderr and "a link to outside the source" in result.stderr
    (written,) = _tree(tmp_path / "out").values()
    assert len(written) > len(data) - 1000  # the whole slice's output, not the cut one's

    followed = _anonymize(
        str(source), str(tmp_path / "out"), "--key-file", str(key), "--workers", "1", "--follow-links-out"
    )
    assert "2 de-identified" in followed.stdout  # the rerun's same bytes are accepted; the link followed
    assert len(_tree(tmp_path / "out")) == 2


def test_a_second_object_mapping_to_a_written_name_is_a_failure_not_an_overwrite(tmp_path: Path) -> None:
    person = patients(1)[0]
    source = tmp_path / "in"
    source.mkdir()
    first = planted_ct(person, 0)
    first.save_as(source / "a.dcm", enforce_file_format=True)
    second = copy.deepcopy(first)  # the same UIDs, other pixel data
    second.PixelData = bytes(len(first.PixelData))
    second.save_as(source / "b.dcm", enforce_file_format=True)
    key = tmp_path / "k.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    result = _anonymize(str(source), str(tmp_path / "out"), "--key-file", str(key), "--workers", "1")
    assert result.returncode == INCOMPLETE and "1 de-identified, 0 quarantined, 1 failed" in result.stdout
    assert "not overwritten" in result.stderr
    (written,) = _tree(tmp_path / "out").values()
    assert dcmread(BytesIO(written)).PixelData != bytes(len(first.PixelData))  # the first one's


def test_a_target_inside_the_source_is_refused_and_a_quarantine_exits_apart(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    source = tmp_path / "in"
    _inputs(source)
    inside = _anonymize(str(source), str(source / "out"), "--key-file", str(key))
    assert inside.returncode == 1 and "TARGET is inside SOURCE" in inside.stderr
    assert not (source / "out").exists()
    person = patients(1)[0]
    burned = tmp_path / "burned"
    burned.mkdir()
    at_risk = planted_ct(person, 0)
    at_risk.BurnedInAnnotation = "YES"  # pixels that must be read for text, but cannot be: quarantined
    at_risk.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    at_risk.PixelData = encapsulate([b"\xff\xd8 not a JPEG stream at all \xff\xd9"])
    at_risk["PixelData"].VR = "OB"
    at_risk.save_as(burned / "a.dcm", enforce_file_format=True)
    held = _anonymize(str(burned), str(tmp_path / "out"), "--key-file", str(key), "--workers", "1")
    assert "1 quarantined" in held.stdout, held.stdout + held.stderr
    assert held.returncode == INCOMPLETE


def test_a_worker_killed_stops_the_run_in_one_line_and_a_rerun_completes(tmp_path: Path) -> None:
    """A de-identifying process killed as it starts (as by the kernel out of memory): one line and
    no traceback; run again, the same command writes every output (those written stay as they are)."""
    import time

    import psutil

    from testbed.synthetic import FakePatient, ct_series, write_series

    write_series(tmp_path / "in", ct_series(40, FakePatient(), size=64, seed=4))
    key = tmp_path / "pseudonymisation.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    args = [str(tmp_path / "in"), str(tmp_path / "out"), "--key-file", str(key), "--workers", "2"]
    env = {k: v for k, v in os.environ.items() if k != "APPLIANCE_HOME"}
    run = psutil.Popen(
        [*APPLIANCE, "anonymize", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    while not (workers := run.children()) and run.poll() is None:
        time.sleep(0.002)
    workers[0].kill()
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 1 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == (
        "Error: a de-identifying process stopped before it answered (killed, or out of memory?): "
        "run the same command again; what was done stays"
    )
    again = _anonymize(*args)
    assert again.returncode == 0, again.stderr
    assert "40 de-identified, 0 quarantined, 0 failed" in again.stdout
