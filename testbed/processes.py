"""Real peers on loopback: ``appliance serve`` and Orthanc, started and stopped by tests."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
APPLIANCE = [sys.executable, "-m", "appliance.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@functools.cache
def local_http() -> httpx.Client:
    """One client for the local plain-HTTP polls: making one costs about 50 ms of CPU (its TLS
    context), which polling every 0.2 s would take from the processes being tested or measured.
    No kept-alive connections: a server may close an idle one just as the next poll reuses it."""
    return httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def timed_process(command: list[str]) -> float:
    """Wall seconds of a whole process run in the repository (start-up included, as a user meets it);
    a failure stops the benchmark with the end of its error output."""
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:5])} failed: {result.stderr[-2000:]}")
    return seconds


def run_cli(
    home: Path, *args: str, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
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

    def __init__(
        self, home: Path, log_file: Path, env: dict | None = None, https_ca: Path | None = None
    ) -> None:
        self.home = home
        self.log_file = log_file
        self.env = env or {}
        self.https_ca = https_ca  # the HTTP port serves TLS with a certificate from this CA
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> ApplianceProcess:
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [
                *APPLIANCE,
                "serve",
                "--home",
                str(self.home),
                "--dicom-port",
                str(self.dicom_port),
                "--http-port",
                str(self.http_port),
            ],
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
            raise RuntimeError(
                f"appliance exited with {self.process.returncode}: {self.log_file.read_text()[-2000:]}"
            )
        try:
            return self._client().get(f"{self.base_url}/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def base_url(self) -> str:
        return f"{'https' if self.https_ca else 'http'}://127.0.0.1:{self.http_port}"

    def _client(self) -> httpx.Client:
        if self.https_ca is None:
            return local_http()
        return httpx.Client(verify=ssl.create_default_context(cafile=self.https_ca))

    def readiness(self) -> dict:
        return self._client().get(f"{self.base_url}/health/ready", timeout=5).json()

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
            # DCMTK, under Orthanc's DICOM server, reads TCP_NODELAY: without it Nagle's algorithm
            # holds back small PDUs and Orthanc runs about five times slower on loopback.
            env={**os.environ, "TCP_NODELAY": "1"},
        )
        wait_for(self._up, 30, "Orthanc")
        return self

    def _up(self) -> bool:
        try:
            return local_http().get(f"http://127.0.0.1:{self.http_port}/system", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def instances(self) -> list[str]:
        return local_http().get(f"http://127.0.0.1:{self.http_port}/instances", timeout=10).json()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class PostgresProcess:
    """A throwaway PostgreSQL cluster (Debian's binaries) on a free loopback port.

    Its folder is a fresh temporary one, since the server runs as ``postgres`` when the tests
    run as root and cannot enter pytest's private folders.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="appliance-pg-"))
        self.port = free_port()
        self.data = self.root / "data"
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise RuntimeError("PostgreSQL server binaries not found; run scripts/install-system-deps.sh")
        self.bin = bins[-1]

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresProcess:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "appliance", "--auth=trust")
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "pg.log"),
            "-w",
            "start",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1",
        )
        self._run(
            str(self.bin / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "appliance",
            "appliance",
        )
        return self

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://appliance@127.0.0.1:{self.port}/appliance"

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class RsyslogProcess:
    """Debian's rsyslogd as a SIEM's receiver: syslog over TLS (RFC 5425) into a file."""

    def __init__(self, root: Path, ca: Path, cert: Path, key: Path) -> None:
        self.root = root
        self.port = free_port()
        self.output = root / "received.log"
        self.ca, self.cert, self.key = ca, cert, key
        self.process: subprocess.Popen | None = None

    def start(self) -> RsyslogProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "rsyslog.conf"
        config.write_text(
            f"""
global(workDirectory="{self.root}"
       DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile="{self.ca}"
       DefaultNetstreamDriverCertFile="{self.cert}"
       DefaultNetstreamDriverKeyFile="{self.key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.Authmode="x509/certvalid")
input(type="imtcp" port="{self.port}" address="127.0.0.1")
template(name="body" type="string" string="%msg%\\n")
action(type="omfile" file="{self.output}" template="body")
"""
        )
        self.process = subprocess.Popen(
            ["rsyslogd", "-n", "-f", str(config), "-i", str(self.root / "rsyslogd.pid")],
            stdout=(self.root / "rsyslogd.out").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for(self._listening, 20, "rsyslogd")
        return self

    def _listening(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def lines(self) -> list[str]:
        return self.output.read_text().splitlines() if self.output.exists() else []

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
