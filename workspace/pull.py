"""``research pull`` and ``research verify``: a release, checked file by file, into a folder.

The manifest's signature is verified with the researcher's trusted key first; the release's prefix
must hold the manifest and nothing else; every file is downloaded (in parallel, to a ``.part`` name
renamed once its SHA-256 matches) unless the folder has it already with the right hash, so a pull
that was cut short resumes. Any mismatch stops the pull with the offending file's name. The folder
then holds ``files/`` (the DICOM files at their pseudonymised paths) and ``release.dsse.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from anonymizer.errors import ObjectMissing, ReleaseRejected
from anonymizer.release.manifest import (
    ReleaseFile,
    ReleaseManifest,
    manifest_key,
    object_key,
    release_prefix,
    verify_manifest,
)
from anonymizer.release.stores import WorkspaceStore, file_sha256, room_checked
from workspace.locations import ReleaseAddress

FILES = "files"
ENVELOPE = "release.dsse.json"
_DOWNLOADS = 8


def fetch_manifest(
    store: WorkspaceStore, address: ReleaseAddress, trusted: list[Ed25519PublicKey]
) -> tuple[bytes, ReleaseManifest]:
    try:
        envelope = store.get(manifest_key(address.name, address.version))
    except ObjectMissing:
        raise ReleaseRejected(
            f"no release {address.name} v{address.version} at {store.url} (see `research ls {store.url}`)"
        ) from None
    manifest = verify_manifest(envelope, trusted)
    if (manifest.name, manifest.version) != (address.name, address.version):
        raise ReleaseRejected(
            f"the manifest at {address.name}/v{address.version} "
            f"is that of {manifest.name} v{manifest.version}"
        )
    extra = [
        k
        for k in store.keys(release_prefix(address.name, address.version))
        if k != manifest_key(address.name, address.version)
    ]
    if extra:
        raise ReleaseRejected(f"{extra[0]} is in the release's prefix but not in its manifest")
    return envelope, manifest


def _fetch(store: WorkspaceStore, entry: ReleaseFile, folder: Path) -> bool:
    """Download one file unless it is there with the right hash; True when it was downloaded."""
    target = folder / FILES / entry.path
    if target.is_file() and target.stat().st_size == entry.size and file_sha256(target) == entry.sha256:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        found = store.download(object_key(entry.sha256), part)
    except ObjectMissing:
        part.unlink(missing_ok=True)
        raise ReleaseRejected(
            f"{entry.path}: missing from the workspace (object {entry.sha256[:12]}...)"
        ) from None
    if found != entry.sha256:
        part.unlink()
        raise ReleaseRejected(
            f"{entry.path}: its bytes in the workspace do not match the manifest (sha256 {found[:12]}..., "
            f"expected {entry.sha256[:12]}...)"
        )
    part.replace(target)
    return True


def pull(
    store: WorkspaceStore,
    folder: Path,
    envelope: bytes,
    manifest: ReleaseManifest,
    order: list[ReleaseFile],
    on_file: Callable[[ReleaseFile], None],
    progress: Callable[[int, int], None],
) -> int:
    """Pull the files of a release whose manifest :func:`fetch_manifest` verified into ``folder``,
    in ``order`` (the manifest's files, in the order to fetch them), telling ``on_file`` of each
    file once it is in and verified; return how many files were downloaded."""
    folder.mkdir(parents=True, exist_ok=True)
    downloaded = 0
    with room_checked(folder), ThreadPoolExecutor(_DOWNLOADS, thread_name_prefix="pull") as pool:
        fetches = pool.map(lambda entry: _fetch(store, entry, folder), order)
        for done, (entry, fetched) in enumerate(zip(order, fetches, strict=True), 1):
            downloaded += fetched
            on_file(entry)
            progress(done, len(order))
    _check_no_extra(folder, manifest)
    with room_checked(folder):
        (folder / ENVELOPE).write_bytes(envelope)
    return downloaded


def _check_no_extra(folder: Path, manifest: ReleaseManifest) -> None:
    expected = {entry.path for entry in manifest.files}
    for path in sorted((folder / FILES).rglob("*")):
        if path.is_file():
            relative = path.relative_to(folder / FILES).as_posix()
            if relative.endswith(".part"):
                path.unlink()
            elif relative not in expected:
                raise ReleaseRejected(f"{FILES}/{relative} is not in the release's manifest")


def verify_copy(folder: Path, trusted: list[Ed25519PublicKey]) -> ReleaseManifest:
    """Re-check a pulled copy: its manifest's signature, every file's hash, nothing missing or extra."""
    try:
        envelope = (folder / ENVELOPE).read_bytes()
    except FileNotFoundError:
        raise ReleaseRejected(f"{folder} holds no {ENVELOPE}: it is not a pulled release") from None
    manifest = verify_manifest(envelope, trusted)
    for entry in manifest.files:
        path = folder / FILES / entry.path
        if not path.is_file():
            raise ReleaseRejected(f"{FILES}/{entry.path} is missing")
        if file_sha256(path) != entry.sha256:
            raise ReleaseRejected(f"{FILES}/{entry.path} does not match the manifest's SHA-256")
    _check_no_extra(folder, manifest)
    return manifest
