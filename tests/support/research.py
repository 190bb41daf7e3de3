"""Research export fixtures: instances stored straight through the appliance's writer, the
appliance's release key on disk, and moto's standalone S3 server as a real HTTP peer."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian

from appliance.context import Appliance
from appliance.storage.writer import NewObject, ObjectWriter
from dicom_gateway.received import parse_instance
from testbed.processes import free_port, wait_for


def store_datasets(app: Appliance, datasets: list[Dataset], calling: str = "SCU") -> None:
    """Store ``datasets`` as if received from ``calling`` (the gateway's parse, the one writer)."""
    writer = ObjectWriter(app)
    try:
        for ds in datasets:
            buffer = DicomBytesIO()
            buffer.is_little_endian, buffer.is_implicit_VR = True, False
            write_dataset(buffer, ds)
            instance = parse_instance(
                buffer.getvalue(), ExplicitVRLittleEndian, ds.SOPClassUID, ds.SOPInstanceUID, calling, "APPLIANCE"
            )
            writer.write(NewObject.received(instance))
    finally:
        writer.close()


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen

    def client(self, key: str = "test", secret: str = "test"):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=key, aws_secret_access_key=secret,
        )  # fmt: skip


S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def s3_server(log: Path, port: int | None = None) -> Iterator[S3Server]:
    """moto's standalone S3 server (``moto_server``, from the ``moto[server]`` package) on loopback."""
    port = port or free_port()
    executable = Path(sys.executable).with_name("moto_server")
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **S3_ENV},
        )  # fmt: skip
    server = S3Server(f"http://127.0.0.1:{port}", process)
    try:
        wait_for(lambda: _answers(server), 30, "moto_server")
        yield server
    finally:
        process.terminate()
        process.wait(10)


def _answers(server: S3Server) -> bool:
    import urllib.request

    try:
        urllib.request.urlopen(server.endpoint + "/", timeout=1).read()
        return True
    except OSError:
        return False
