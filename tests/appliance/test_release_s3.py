"""Releases to a real S3-compatible server (moto's standalone server) and to Orthanc's DICOMweb:
credentials, a missing bucket, an unreachable workspace, kill -9 mid-release, and pulls from S3."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from appliance.context import open_appliance
from testbed.processes import APPLIANCE, REPO, OrthancProcess, free_port, local_http, run_cli, wait_for
from testbed.research import S3_ENV, s3_server, store_datasets
from testbed.synthetic import FakePatient, ct_series

pytestmark = pytest.mark.slow
PATIENT = FakePatient("Fenwick^Rosalind", "PID-4417", "19590909")


def _stored(home: Path, count: int, seed: int = 0) -> None:
    app = open_appliance(home)
    try:
        store_datasets(app, ct_series(count, PATIENT, size=32, seed=seed))
    finally:
        app.close()


def _one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _credentials(tmp_path: Path, key: str, secret: str, mode: int = 0o600) -> Path:
    path = tmp_path / f"credentials-{key[:6]}"
    path.write_text(f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n")
    path.chmod(mode)
    return path


def test_credentials_from_a_file_are_checked_kept_encrypted_and_used(home: Path, tmp_path: Path) -> None:
    _stored(home, 3)
    with s3_server(tmp_path / "moto.log", checked_keys=True) as s3:
        url = ["--s3", "s3://research/site-a", "--endpoint", s3.endpoint]
        loose = _credentials(tmp_path, *s3.credentials, mode=0o644)
        assert "readable by others" in _one_line(
            run_cli(home, "workspaces", "add", "cloud", *url, "--credentials-file", str(loose), check=False)
        )
        wrong = _credentials(tmp_path, "AKIAWRONGWRONGWRONG", "nope")
        run_cli(home, "workspaces", "add", "wrong", *url, "--credentials-file", str(wrong))
        assert "refused the credentials" in _one_line(
            run_cli(home, "workspaces", "check", "wrong", check=False)
        )
        right = _credentials(tmp_path, *s3.credentials)
        run_cli(home, "workspaces", "add", "cloud", *url, "--credentials-file", str(right))
        assert (
            "workspace cloud answers: s3://research/site-a"
            in run_cli(home, "workspaces", "check", "cloud").stdout
        )
        listed = run_cli(home, "workspaces", "list").stdout
        assert "kept encrypted" in listed and s3.credentials[1] not in listed
        database = (home / "appliance.db").read_bytes() if (home / "appliance.db").exists() else b""
        assert s3.credentials[1].encode() not in database
        run_cli(home, "datasets", "release", "demo", "--to", "cloud")
        keys = [o["Key"] for o in s3.client(*s3.credentials).list_objects_v2(Bucket="research")["Contents"]]
        assert "site-a/datasets/demo/v1/manifest.dsse.json" in keys and len(keys) == 4
        missing = ["--s3", "s3://no-such-bucket/x", "--endpoint", s3.endpoint]
        run_cli(home, "workspaces", "add", "nobucket", *missing, "--credentials-file", str(right))
        assert "bucket no-such-bucket does not exist" in _one_line(
            run_cli(home, "workspaces", "check", "nobucket", check=False)
        )


def _release(home: Path, workspace: str = "cloud") -> subprocess.Popen:
    return subprocess.Popen(
        [*APPLIANCE, "datasets", "release", "big", "--to", workspace, "--home", str(home)],
        cwd=REPO, env={**os.environ, **S3_ENV}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def test_kill_9_mid_release_then_the_same_command_finishes_the_same_version(
    home: Path, tmp_path: Path
) -> None:
    _stored(home, 120)
    log = tmp_path / "moto.log"
    with s3_server(log) as s3:
        s3.client().create_bucket(Bucket="research")
        run_cli(home, "workspaces", "add", "cloud", "--s3", "s3://research/ws", "--endpoint", s3.endpoint)

        def objects() -> list[str]:
            found = s3.client().list_objects_v2(Bucket="research").get("Contents", [])
            return [o["Key"] for o in found]

        first = _release(home)
        wait_for(lambda: len(objects()) >= 15 or first.poll() is not None, 120, "some uploads")
        os.killpg(first.pid, signal.SIGKILL)  # the command and its de-identifying processes
        first.wait()
        cut = objects()
        assert 15 <= len(cut) < 120 and not any(k.endswith("manifest.dsse.json") for k in cut)

        second = _release(home)
        out, err = second.communicate(timeout=300)
        assert second.returncode == 0, err
        assert re.search(r"big v1 \(resumed\): 120 instances \((\d+) uploaded, (\d+) already there\)", out), (
            out
        )
        keys = objects()
        assert len(keys) == 121 and "ws/datasets/big/v1/manifest.dsse.json" in keys
        assert "ws/datasets/big/v2/manifest.dsse.json" not in keys
    # the server's own log: no object was written twice
    puts = Counter(re.findall(r'"PUT /research/(ws/objects/sha256/[0-9a-f]{64}) HTTP', log.read_text()))
    assert len(puts) == 120 and max(puts.values()) == 1


def test_an_unreachable_workspace_stops_in_one_line_and_the_release_resumes(
    home: Path, tmp_path: Path
) -> None:
    _stored(home, 4)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    run_cli(home, "workspaces", "add", "cloud", "--s3", "s3://research/ws", "--endpoint", endpoint)
    down = run_cli(home, "datasets", "release", "demo", "--to", "cloud", check=False, env=S3_ENV)
    assert "is unreachable" in _one_line(down) and "the same command resumes" in down.stderr
    with s3_server(tmp_path / "moto.log", port=port) as s3:
        s3.client().create_bucket(Bucket="research")
        done = run_cli(home, "datasets", "release", "demo", "--to", "cloud", env=S3_ENV)
        assert "demo v1: 4 instances (4 uploaded, 0 already there)" in done.stdout

        # a researcher pulls it from S3; an object altered in the bucket is named and refused
        key = tmp_path / "release.pem"
        key.write_text(run_cli(home, "datasets", "signing-key").stdout)
        pull = [sys.executable, "-m", "workspace.cli", "pull", "s3://research/ws/demo/v1"]
        args = ["--trust", str(key), "--endpoint", s3.endpoint]
        env = {**os.environ, **S3_ENV}
        ok = subprocess.run(
            [*pull, str(tmp_path / "a"), *args], capture_output=True, text=True, cwd=REPO, env=env
        )
        assert "4 files verified (4 downloaded)" in ok.stdout, ok.stderr
        client = s3.client()
        victim = next(
            o["Key"] for o in client.list_objects_v2(Bucket="research")["Contents"] if "objects" in o["Key"]
        )
        client.put_object(Bucket="research", Key=victim, Body=b"altered")
        bad = subprocess.run(
            [*pull, str(tmp_path / "b"), *args], capture_output=True, text=True, cwd=REPO, env=env
        )
        assert "its bytes in the workspace do not match the manifest" in _one_line(bad)


def test_a_release_to_a_research_pacs_over_dicomweb(home: Path, tmp_path: Path) -> None:
    _stored(home, 3)
    plugin = {"Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"], "DicomWeb": {"Enable": True}}
    orthanc = OrthancProcess(tmp_path / "orthanc").start(plugin)
    try:
        root = f"http://127.0.0.1:{orthanc.http_port}/dicom-web"
        run_cli(home, "workspaces", "add", "pacs", "--dicomweb", root)
        assert "answers" in run_cli(home, "workspaces", "check", "pacs").stdout
        first = run_cli(home, "datasets", "release", "rp", "--to", "pacs")
        assert "rp v1: 3 instances (3 uploaded, 0 already there)" in first.stdout
        stored = orthanc.instances()
        assert len(stored) == 3
        tags = (
            local_http()
            .get(f"http://127.0.0.1:{orthanc.http_port}/instances/{stored[0]}/simplified-tags")
            .json()
        )
        assert tags["PatientName"].startswith("ANON") and tags["PatientID"] != PATIENT.patient_id
        _stored(home, 2, seed=1)
        second = run_cli(home, "datasets", "release", "rp", "--to", "pacs")
        assert "rp v2: 5 instances (2 uploaded, 3 already there)" in second.stdout
        assert len(orthanc.instances()) == 5
    finally:
        orthanc.stop()


def test_large_objects_go_in_parts_and_every_upload_carries_its_sha256(tmp_path: Path) -> None:
    from anonymizer.release.stores import S3Store, parse_s3_url, sha256_hex

    with s3_server(tmp_path / "moto.log") as s3:
        client = s3.client()
        client.create_bucket(Bucket="research")
        store = S3Store(parse_s3_url("s3://research/ws", s3.endpoint), s3.credentials)
        big = os.urandom(9 * 1024 * 1024)  # over the 8 MB part size: two parts
        small = b"small object"
        for data in (big, small):
            digest = sha256_hex(data)
            assert not store.has(f"objects/sha256/{digest}", digest)
            store.put(f"objects/sha256/{digest}", data, digest)
            assert store.has(f"objects/sha256/{digest}", digest)
            assert store.get(f"objects/sha256/{digest}") == data
        head = client.head_object(
            Bucket="research", Key=f"ws/objects/sha256/{sha256_hex(big)}", ChecksumMode="ENABLED"
        )
        assert head["ETag"].strip('"').endswith("-2") and head["Metadata"]["sha256"] == sha256_hex(big)
        import base64
        import hashlib

        head = client.head_object(
            Bucket="research", Key=f"ws/objects/sha256/{sha256_hex(small)}", ChecksumMode="ENABLED"
        )
        assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(small).digest()).decode()
