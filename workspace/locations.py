"""Workspace URLs as researchers write them: ``s3://BUCKET/PREFIX/NAME/vN`` or ``FOLDER/NAME/vN``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from workspace.errors import ResearchError


@dataclass(frozen=True)
class ReleaseAddress:
    workspace: str  # the workspace root: s3://BUCKET/PREFIX or a folder
    name: str
    version: int


def parse_release(url: str) -> ReleaseAddress:
    parts = url.rstrip("/").rsplit("/", 2)
    if len(parts) != 3 or not re.fullmatch(r"v[1-9][0-9]*", parts[2]) or not parts[1]:
        raise ResearchError(
            f"{url!r}: name a release as WORKSPACE/NAME/vN, e.g. s3://bucket/research/demo/v1"
        )
    return ReleaseAddress(parts[0] or "/", parts[1], int(parts[2][1:]))
