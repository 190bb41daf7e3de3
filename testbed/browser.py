"""A real browser for page tests and the viewer benchmark: Playwright driving Debian's Chromium
(Playwright's own browser download is not reachable here, nor needed)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Debian's chromium package is missing: make system-deps installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
