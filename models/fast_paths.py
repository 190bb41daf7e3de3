"""The library fast paths, behind one door: installed by one explicit call at process start.

Each fast path does a part of MONAI's, highdicom's or PyTorch's work with less memory or time and
the same output (each has a test comparing its output with the library's; ``docs/fast-paths.md``
says what each saves, and ``benchmarks/fast_paths.py`` measures it). Each was written against one
release of the library it serves: on any other, :func:`install` leaves that library's own code in
place and warns once. Nothing is patched at import time. Three are global patches; the rest are
steps a :class:`models.bundle.Predictor` takes in place of the bundle's own, only when it is built
after :func:`install`.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections.abc import Callable, Collection

log = logging.getLogger(__name__)

# The release each library's fast paths were written for and tested against.
WRITTEN_FOR = {"monai": "1.6.1", "highdicom": "0.28.2"}


def _resampling() -> None:
    from models import resampling

    resampling.install()


def _standard_tables() -> None:
    from models import standard_tables

    standard_tables.install()


# Each fast path: the library whose release it needs, and its global patch (None: a Predictor's step).
FAST_PATHS: dict[str, tuple[str, Callable[[], None] | None]] = {
    "resampling": ("monai", _resampling),  # axis-aligned resampling, separable, in the image's precision
    "standard_tables": ("highdicom", _standard_tables),  # compact standard tables, IOD lookups remembered
    "argmax": ("monai", None),  # AsDiscreted's channel argmax by torch.max, a slab at a time
    "run_taking": ("monai", None),  # preprocessing that lets each step's input go
    "paired_windows": ("monai", None),  # on the CPU, a last batch of one window run as two
    "two_class": ("monai", None),  # two-class logits reduced to their difference
}

_lock = threading.Lock()
_active: set[str] = set()  # fast paths installed in this process
_refused: set[str] = set()  # libraries found at another release (warned once)


def _release_matches(library: str, versions: dict[str, str] | None) -> bool:
    if library in _refused:
        return False
    found = (versions or {}).get(library) or importlib.metadata.version(library)
    if found == WRITTEN_FOR[library]:
        return True
    _refused.add(library)
    log.warning(
        "%s %s is installed; its fast paths were written for %s, so its own code runs",
        library, found, WRITTEN_FOR[library],
    )  # fmt: skip
    return False


def install(versions: dict[str, str] | None = None, without: Collection[str] = ()) -> frozenset[str]:
    """Install every fast path whose library is at the release it was written for, except those
    named in ``without`` (for the benchmark that measures each); return the fast paths now active.
    Idempotent. ``versions`` overrides the installed releases (for tests of the fallback)."""
    unknown = set(without) - FAST_PATHS.keys()
    if unknown:
        raise ValueError(f"no fast path named {', '.join(sorted(unknown))}; known: {', '.join(FAST_PATHS)}")
    with _lock:
        for name, (library, patch) in FAST_PATHS.items():
            if name in _active or name in without or not _release_matches(library, versions):
                continue
            if patch is not None:
                patch()
            _active.add(name)
        return frozenset(_active)


def active(name: str) -> bool:
    """Whether the fast path ``name`` (a key of :data:`FAST_PATHS`) is installed in this process."""
    if name not in FAST_PATHS:
        raise ValueError(f"no fast path named {name}")
    return name in _active
