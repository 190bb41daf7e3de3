"""highdicom's tables of the DICOM standard: kept small, and each question answered once.

highdicom loads the standard's module -> attributes table (a large JSON file) whole on first use
and keeps it as Python objects for the life of the inference process, although a SEG and an SR
read a few dozen of its modules. :class:`ModuleAttributes` holds each module's list compressed
and decodes a module when first asked for it. And highdicom asks "is this attribute in this IOD?"
for every source image while it places a SEG's frames, each answer walking those tables; the
answer depends only on the question, so each is remembered. ``docs/fast-paths.md`` gives what
this saves.

:func:`install` puts both in place of highdicom's own (idempotent).
"""

from __future__ import annotations

import functools
import json
import pkgutil
import sys
import zlib
from array import array
from collections.abc import Iterator, Mapping

_MODULE_TABLE = "_standard/module_attribute_map.json"


class ModuleAttributes(Mapping[str, list]):
    """The module -> attributes table, each module's list compressed until first asked for."""

    def __init__(self, table: bytes) -> None:
        # Everything the parse makes is freed before anything kept is made: kept objects made in
        # between would hold on to the allocator's pages around them.
        modules = json.loads(table)
        packed, ends = bytearray(), array("q")
        for attributes in modules.values():
            packed += zlib.compress(json.dumps(attributes, separators=(",", ":")).encode(), 1)
            ends.append(len(packed))
        names = "\n".join(modules)
        del modules  # no cycles among parsed JSON: all of it goes now
        self._packed = bytes(packed)
        self._spans = dict(zip(names.split("\n"), zip([0, *ends[:-1]], ends, strict=True), strict=True))
        self._decoded: dict[str, list] = {}

    def __getitem__(self, module: str) -> list:
        if module not in self._decoded:
            start, end = self._spans[module]
            self._decoded[module] = json.loads(zlib.decompress(self._packed[start:end]))
        return self._decoded[module]

    def __iter__(self) -> Iterator[str]:
        return iter(self._spans)

    def __len__(self) -> int:
        return len(self._spans)


def _compact_module_table() -> None:
    import highdicom._standard_utils as standard

    original = standard.get_module_attribute_map
    if getattr(original, "compact", False):
        return

    @functools.cache
    def get_module_attribute_map() -> ModuleAttributes:
        table = pkgutil.get_data("highdicom", _MODULE_TABLE)
        if table is None:
            raise FileNotFoundError(f"highdicom has no {_MODULE_TABLE}")
        return ModuleAttributes(table)

    get_module_attribute_map.compact = True  # type: ignore[attr-defined]
    for name, module in list(sys.modules.items()):  # highdicom's modules import it by name
        if (
            name.split(".")[0] == "highdicom"
            and getattr(module, "get_module_attribute_map", None) is original
        ):
            module.get_module_attribute_map = get_module_attribute_map  # type: ignore[attr-defined]
    original.cache_clear()  # the whole table, if anything loaded it already


def _remember_iod_lookups() -> None:
    import highdicom._standard_utils as standard

    lookup = standard.is_attribute_in_iod
    if getattr(lookup, "remembered", False):
        return
    answers: dict[tuple[str, str, tuple[str, ...] | None], bool] = {}

    @functools.wraps(lookup)
    def is_attribute_in_iod(attribute: str, sop_class_uid: str, exclude_path_elements=None) -> bool:  # type: ignore[no-untyped-def]
        excluded = None if exclude_path_elements is None else tuple(exclude_path_elements)
        question = (attribute, str(sop_class_uid), excluded)
        if question not in answers:
            answers[question] = lookup(attribute, sop_class_uid, exclude_path_elements)
        return answers[question]

    is_attribute_in_iod.remembered = True  # type: ignore[attr-defined]
    standard.is_attribute_in_iod = is_attribute_in_iod


def install() -> None:
    """The compact module table and the remembered IOD lookups, in highdicom (idempotent)."""
    import highdicom  # noqa: F401  (its modules must be loaded for their names to be replaced)

    _compact_module_table()
    _remember_iod_lookups()
