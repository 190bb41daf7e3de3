"""Research export parts for tests and benchmarks: instances stored straight through the
appliance's writer (no network), and moto's standalone S3 server as a real HTTP peer."""

from __future__ import annotations

import json
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
                buffer.getvalue(),
                ExplicitVRLittleEndian,
                ds.SOPClassUID,
                ds.SOPInstanceUID,
                calling,
                "APPLIANCE",
            )
            writer.write(NewObject.received(instance))
    finally:
        writer.close()


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen
    credentials: tuple[str, str] = ("test", "test")

    def client(self, key: str = "test", secret: str = "test"):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=key, aws_secret_access_key=secret,
        )  # fmt: skip


S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
_KEYS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


_ALL_S3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


@contextmanager
def s3_server(log: Path, port: int | None = None, checked_keys: bool = False) -> Iterator[S3Server]:
    """moto's standalone S3 server (``moto_server``, from the ``moto[server]`` package) on loopback.

    With ``checked_keys`` it refuses unknown access keys, as S3 does: its first four requests (the
    ones allowed before authentication starts) make a user, its key and policy, and a bucket
    ``research``; ``credentials`` are then that user's."""
    port = port or free_port()
    executable = Path(sys.executable).with_name("moto_server")
    env = {**os.environ, **S3_ENV}
    if checked_keys:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "4"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = S3Server(f"http://127.0.0.1:{port}", process)
    try:
        wait_for(lambda: _answers(server), 30, "moto_server")
        if checked_keys:
            import boto3

            iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1", **_KEYS)
            iam.create_user(UserName="releaser")
            key = iam.create_access_key(UserName="releaser")["AccessKey"]
            iam.put_user_policy(UserName="releaser", PolicyName="s3", PolicyDocument=json.dumps(_ALL_S3))
            server.credentials = (key["AccessKeyId"], key["SecretAccessKey"])
            server.client(*server.credentials).create_bucket(Bucket="research")
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
