"""The page tests' browser (see ``testbed.browser``), and screenshots kept as test artefacts in
``test-artefacts/``."""

from __future__ import annotations

from pathlib import Path

from testbed.browser import chromium
from testbed.processes import REPO

__all__ = ["SCREENSHOTS", "chromium", "screenshot"]

SCREENSHOTS = REPO / "test-artefacts" / "screenshots"


def screenshot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
