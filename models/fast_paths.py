"""The library fast paths, behind one door: installed by one explicit call at process start.

Each fast path does a part of MONAI's or highdicom's work with less memory or time and the same
output (each has a test comparing its output with the library's; ``docs/fast-paths.md`` gives what
each saves, as measured). Each was written against one release of its library: on any other,
:func:`install` leaves that library's own code in place and warns once. Nothing is patched at import
time, and a :class:`models.bundle.Predictor` built before :func:`install` (or without it) runs the
bundle's own steps throughout.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

# The release each library's fast paths were written for and tested against.
WRITTEN_FOR = {"monai": "1.6.1", "highdicom": "0.28.2"}

_lock = threading.Lock()
_active: set[str] = set()  # libraries whose fast paths are installed
_refused: set[str] = set()  # libraries found at another release (warned once)


def _monai() -> None:
    from models import intensity, resampling

    resampling.install()  # axis-aligned resampling, separable, in the image's precision
    intensity.install()  # CT windowing in one new tensor


def _highdicom() -> None:
    from models import standard_tables

    standard_tables.install()  # the standard's tables kept compact, IOD lookups remembered


_INSTALLERS: dict[str, Callable[[], None]] = {"monai": _monai, "highdicom": _highdicom}


def install(versions: dict[str, str] | None = None) -> frozenset[str]:
    """Install every library's fast paths whose installed release is the one they were written for;
    return the libraries now served by them. Idempotent. ``versions`` overrides the installed
    releases (for tests of the fallback)."""
    with _lock:
        for library, installer in _INSTALLERS.items():
            if library in _active or library in _refused:
                continue
            found = (versions or {}).get(library) or importlib.metadata.version(library)
            if found != WRITTEN_FOR[library]:
                _refused.add(library)
                log.warning(
                    "%s %s is installed; its fast paths were written for %s, so its own code runs",
                    library, found, WRITTEN_FOR[library],
                )  # fmt: skip
                continue
            installer()
            _active.add(library)
        return frozenset(_active)


def active(library: str) -> bool:
    """Whether ``library``'s fast paths are installed in this process."""
    return library in _active
