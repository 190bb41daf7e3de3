"""Durable file writes: temporary file, fsync, rename into place, fsync the directory."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes | Sequence[bytes], mode: int = 0o600) -> None:
    """Write ``data`` (or its parts, in order, without joining them) to ``path`` so that after
    return it survives a crash, whole or not at all."""
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        views = [memoryview(data)] if isinstance(data, bytes) else [memoryview(part) for part in data]
        while views:
            written = os.writev(fd, views)
            while views and written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            if views:
                views[0] = views[0][written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent)
