"""Real peers on loopback: ``appliance serve`` and Orthanc, started and stopped by tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
APPLIANCE = [sys.executable, "-m", "appliance.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def run_cli(home: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*APPLIANCE, *args, "--home", str(home)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"appliance {' '.join(args)} failed: {result.stderr}")
    return result


class ApplianceProcess:
    """``appliance serve`` as a subprocess; logs go to a file outside the home."""

    def __init__(self, home: Path, log_file: Path, env: dict | None = None) -> None:
        self.home = home
        self.log_file = log_file
        self.env = env or {}
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> ApplianceProcess:
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [*APPLIANCE, "serve", "--home", str(self.home), "--dicom-port", str(self.dicom_port), "--http-port", str(self.http_port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "APPLIANCE_DICOM__HOST": "127.0.0.1", **self.env},
            cwd=REPO,
        )
        wait_for(self.ready, 30, "appliance readiness")
        return self

    def ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"appliance exited with {self.process.returncode}: {self.log_file.read_text()[-2000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.http_port}/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def readiness(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/health/ready", timeout=5).json()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


class OrthancProcess:
    """Debian's Orthanc as a PACS: DICOM on one port, REST on another, storage in a folder."""

    def __init__(self, root: Path, ae_title: str = "ORTHANC") -> None:
        self.root = root
        self.ae_title = ae_title
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self, extra: dict | None = None) -> OrthancProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "test-pacs",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "storage"),
            "DicomAet": self.ae_title,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": True,
            "UnknownSopClassAccepted": True,
            "Plugins": [],
            **(extra or {}),
        }
        config_file = self.root / "orthanc.json"
        config_file.write_text(json.dumps(config))
        self.process = subprocess.Popen(
            ["Orthanc", str(config_file)],
            stdout=(self.root / "orthanc.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for(self._up, 30, "Orthanc")
        return self

    def _up(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.http_port}/system", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def instances(self) -> list[str]:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/instances", timeout=10).json()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
