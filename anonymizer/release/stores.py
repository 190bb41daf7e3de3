"""Workspace object stores: a folder (the embedded default) or an S3 bucket under a prefix.

Keys are relative (``objects/sha256/<hex>``, ``datasets/<name>/v<n>/...``). Every upload carries the
object's SHA-256 for the server to check (S3's ``ChecksumSHA256``, and in its metadata, which also
names multipart objects); objects over 8 MB go in parts. Downloads stream to a file. Transient
failures are retried with backoff (botocore's standard mode); what stays unreachable raises
WorkspaceUnreachable, with the cause in one line.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from anonymizer.errors import NoRoom, ObjectMissing, ReleaseError, WorkspaceUnreachable

PART_BYTES = 8 * 1024 * 1024
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class WorkspaceStore(Protocol):
    url: str

    def check(self) -> None:
        """Raise WorkspaceUnreachable or ReleaseError unless objects can be listed and written."""

    def has(self, key: str, sha256: str) -> bool:
        """Whether ``key`` exists with these bytes."""

    def put(self, key: str, data: bytes, sha256: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def download(self, key: str, target: Path) -> str:
        """Stream ``key`` into ``target`` (created or replaced); the SHA-256 of what was written."""

    def keys(self, prefix: str) -> list[str]: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_hashed(blocks: Iterable[bytes], target: Path) -> str:
    """Write ``blocks`` to ``target``, hashing them on the way: the file is read once, not twice."""
    hasher = hashlib.sha256()
    with room_checked(target.parent), open(target, "wb") as out:
        for block in blocks:
            hasher.update(block)
            out.write(block)
    return hasher.hexdigest()


@contextmanager
def room_checked(where: Path) -> Iterator[None]:
    """Turn a full disk (or a file size limit) into NoRoom, saying that the same command resumes."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _NO_ROOM:
            raise NoRoom(
                f"no room left to write under {where}: free some space and run the same command again"
            ) from None
        raise


class FolderStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def check(self) -> None:
        if not self.root.is_dir():
            raise WorkspaceUnreachable(
                f"workspace folder {self.root} does not exist: create it or fix the path"
            )
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise WorkspaceUnreachable(f"workspace folder {self.root} is not writable by this user")

    def has(self, key: str, sha256: str) -> bool:
        path = self._path(key)
        return path.is_file() and file_sha256(path) == sha256

    def put(self, key: str, data: bytes, sha256: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".part-{path.name}-{os.getpid()}-{os.urandom(4).hex()}")
        with room_checked(self.root):
            try:
                with open(tmp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(f"{key} is not in the workspace {self.url}") from None

    def download(self, key: str, target: Path) -> str:
        source = self._path(key)
        if not source.is_file():
            raise ObjectMissing(f"{key} is not in the workspace {self.url}")
        with open(source, "rb") as src:
            return _write_hashed(iter(lambda: src.read(1 << 20), b""), target)

    def keys(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".part-")
        )


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            hasher.update(block)
    return hasher.hexdigest()


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # empty, or ending in "/"
    endpoint: str | None = None
    region: str | None = None


def parse_s3_url(url: str, endpoint: str | None = None, region: str | None = None) -> S3Location:
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ReleaseError(f"{url!r} is not an S3 URL: write s3://BUCKET/PREFIX")
    prefix = parsed.path.strip("/")
    return S3Location(parsed.netloc, prefix + "/" if prefix else "", endpoint, region)


class S3Store:
    """An S3 bucket (AWS, MinIO, any S3-compatible server) under a prefix, through boto3.

    Credentials: ``credentials`` (access key id, secret) when given, else boto3's own chain (the
    standard AWS environment variables, ``~/.aws``)."""

    def __init__(self, location: S3Location, credentials: tuple[str, str] | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.location = location
        self.url = f"s3://{location.bucket}/{location.prefix}".rstrip("/")
        keys = (
            {"aws_access_key_id": credentials[0], "aws_secret_access_key": credentials[1]}
            if credentials
            else {}
        )
        self.client = boto3.client(
            "s3",
            endpoint_url=location.endpoint,
            region_name=location.region or "us-east-1",
            config=Config(
                retries={"max_attempts": 4, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=32,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
            **keys,
        )

    def _key(self, key: str) -> str:
        return self.location.prefix + key

    @contextmanager
    def _talking(self, what: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            yield
        except NoCredentialsError:
            raise WorkspaceUnreachable(
                f"no S3 credentials for {self.url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or give a credentials file"
            ) from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"NoSuchBucket", "404", "NotFound"}:  # a key's 404 is answered where it is asked
                raise ReleaseError(
                    f"bucket {self.location.bucket} does not exist: create it or fix the URL"
                ) from None
            if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden"}:
                raise WorkspaceUnreachable(
                    f"{self.url} refused the credentials ({code}) while it {what}: "
                    "check the access key and secret"
                ) from None
            raise ReleaseError(f"{self.url} answered {code or 'an error'} while it {what}") from None
        except BotoCoreError as exc:
            raise WorkspaceUnreachable(
                f"{self.url} is unreachable ({type(exc).__name__}) while it {what}; the same command resumes"
            ) from None

    def check(self) -> None:
        with self._talking("listed the bucket"):
            self.client.head_bucket(Bucket=self.location.bucket)
            self.client.list_objects_v2(Bucket=self.location.bucket, Prefix=self.location.prefix, MaxKeys=1)

    def has(self, key: str, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        with self._talking(f"looked for {key}"):
            try:
                head = self.client.head_object(Bucket=self.location.bucket, Key=self._key(key))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                    return False
                raise
        return head.get("Metadata", {}).get("sha256") == sha256

    def put(self, key: str, data: bytes, sha256: str) -> None:
        with self._talking(f"uploaded {key}"):
            if len(data) > PART_BYTES:
                self._put_parts(key, data, sha256)
                return
            self.client.put_object(
                Bucket=self.location.bucket,
                Key=self._key(key),
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=_b64(bytes.fromhex(sha256)),
                Metadata={"sha256": sha256},
            )

    def _put_parts(self, key: str, data: bytes, sha256: str) -> None:
        bucket, full = self.location.bucket, self._key(key)
        upload = self.client.create_multipart_upload(
            Bucket=bucket, Key=full, ChecksumAlgorithm="SHA256", Metadata={"sha256": sha256}
        )
        parts = []
        try:
            for number, start in enumerate(range(0, len(data), PART_BYTES), 1):
                chunk = data[start : start + PART_BYTES]
                checksum = _b64(hashlib.sha256(chunk).digest())
                answer = self.client.upload_part(
                    Bucket=bucket, Key=full, UploadId=upload["UploadId"], PartNumber=number, Body=chunk,
                    ChecksumSHA256=checksum,
                )  # fmt: skip
                parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum})
            self.client.complete_multipart_upload(
                Bucket=bucket, Key=full, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=bucket, Key=full, UploadId=upload["UploadId"])
            raise

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        with self._talking(f"read {key}"):
            try:
                return self.client.get_object(Bucket=self.location.bucket, Key=self._key(key))["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey"}:
                    raise ObjectMissing(f"{key} is not in the workspace {self.url}") from None
                raise

    def download(self, key: str, target: Path) -> str:
        from botocore.exceptions import ClientError

        with self._talking(f"downloaded {key}"):
            try:
                body = self.client.get_object(Bucket=self.location.bucket, Key=self._key(key))["Body"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey"}:
                    raise ObjectMissing(f"{key} is not in the workspace {self.url}") from None
                raise
            return _write_hashed(body.iter_chunks(1 << 20), target)

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        with self._talking(f"listed {prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                found += [item["Key"][len(self.location.prefix) :] for item in page.get("Contents", [])]
        return sorted(found)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def open_store(
    url: str,
    endpoint: str | None = None,
    region: str | None = None,
    credentials: tuple[str, str] | None = None,
) -> WorkspaceStore:
    """The store at ``url``: ``s3://BUCKET/PREFIX`` or a folder path."""
    if url.startswith("s3://"):
        return S3Store(parse_s3_url(url, endpoint, region), credentials)
    if "://" in url:
        raise ReleaseError(f"{url!r}: a workspace is s3://BUCKET/PREFIX or a folder path")
    return FolderStore(Path(url))
