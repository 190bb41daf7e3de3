"""A real browser for page tests and the viewer benchmark: Playwright driving Debian's Chromium
(Playwright's own browser download is not reachable here, nor needed)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _executable() -> str:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Debian's chromium package is missing: make system-deps installs it"
    return executable


@contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_executable(), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def chromium_profiles(*profiles: Path) -> Iterator[list[object]]:
    """One browser context per profile folder, each kept on disk as a person's browser keeps its
    profile: with a disk cache, which holds large files (a new context's in-memory cache does not
    keep OHIF's 15 MB bundle, so each visit would fetch it again)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        contexts = [
            playwright.chromium.launch_persistent_context(
                str(profile), executable_path=_executable(), args=["--no-sandbox"]
            )
            for profile in profiles
        ]
        try:
            yield contexts
        finally:
            for context in contexts:
                context.close()
