"""Where a release writes: an object store (folder, S3) holding files by their SHA-256 and the
manifest last, or a research PACS over DICOMweb (STOW-RS; the manifest stays with the releaser)."""

from __future__ import annotations

import threading
from typing import Protocol

from anonymizer.errors import ReleaseError, WorkspaceUnreachable
from anonymizer.release.manifest import OBJECTS, ReleaseFile, manifest_key, object_key
from anonymizer.release.stores import WorkspaceStore


class ReleaseTarget(Protocol):
    url: str

    def check(self) -> None: ...

    def has(self, entry: ReleaseFile, sop_instance_uid: str) -> bool:
        """Whether this file is there already, with these bytes (an earlier version's, or a run cut short)."""

    def put(self, entry: ReleaseFile, sop_instance_uid: str, data: bytes) -> None: ...

    def publish(self, name: str, version: int, envelope: bytes) -> str:
        """Write the signed manifest (last: a release is visible only when whole); return its URL."""


class ObjectTarget:
    """Files under ``objects/sha256/``. What the workspace holds is listed once (a page per 1,000
    objects), so that only a file found there costs a request to check its SHA-256; a new one
    costs none before its upload."""

    def __init__(self, store: WorkspaceStore) -> None:
        self.store = store
        self.url = store.url
        self._listed: set[str] | None = None
        self._lock = threading.Lock()

    def _present(self) -> set[str]:
        with self._lock:
            if self._listed is None:
                self._listed = set(self.store.keys(OBJECTS))
            return self._listed

    def check(self) -> None:
        self.store.check()

    def has(self, entry: ReleaseFile, sop_instance_uid: str) -> bool:
        key = object_key(entry.sha256)
        return key in self._present() and self.store.has(key, entry.sha256)

    def put(self, entry: ReleaseFile, sop_instance_uid: str, data: bytes) -> None:
        self.store.put(object_key(entry.sha256), data, entry.sha256)

    def publish(self, name: str, version: int, envelope: bytes) -> str:
        from anonymizer.release.stores import sha256_hex

        key = manifest_key(name, version)
        self.store.put(key, envelope, sha256_hex(envelope))
        return f"{self.url.rstrip('/')}/{key}"


class DicomwebTarget:
    """STOW-RS to a research PACS. An instance already there (QIDO by its SOP Instance UID) is not
    sent again; the PACS keeps instances, not manifests, so the manifest's URL names the releaser."""

    def __init__(self, url: str, session: object | None = None) -> None:
        from dicomweb_client.api import DICOMwebClient

        self.url = url.rstrip("/")
        self.client = DICOMwebClient(self.url, session=session)

    def _call(self, what: str, action):  # type: ignore[no-untyped-def]
        import requests

        try:
            return action()
        except requests.ConnectionError:
            raise WorkspaceUnreachable(
                f"{self.url} is unreachable while it {what}; the same command resumes"
            ) from None
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            if status in (401, 403):
                raise WorkspaceUnreachable(f"{self.url} refused the credentials (HTTP {status})") from None
            raise ReleaseError(f"{self.url} answered HTTP {status} while it {what}") from None

    def check(self) -> None:
        self._call("was searched", lambda: self.client.search_for_studies(limit=1))

    def has(self, entry: ReleaseFile, sop_instance_uid: str) -> bool:
        found = self._call(
            "was searched",
            lambda: self.client.search_for_instances(search_filters={"SOPInstanceUID": sop_instance_uid}),
        )
        return bool(found)

    def put(self, entry: ReleaseFile, sop_instance_uid: str, data: bytes) -> None:
        from io import BytesIO

        from pydicom import dcmread

        dataset = dcmread(BytesIO(data))
        self._call(f"stored {entry.path}", lambda: self.client.store_instances([dataset]))

    def publish(self, name: str, version: int, envelope: bytes) -> str:
        return f"{self.url}#dataset={name}&version={version}"
