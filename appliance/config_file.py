"""The ``appliance.toml`` that ``appliance init`` writes: every section and every setting, each
commented out at its default with what it does, generated from the settings' own models so that
none can be left out; plus the one active routing rule (the demo model) and a profile example."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from appliance.config import Settings

_HEADER = """\
# Appliance configuration. Every setting is shown at its default, commented out: uncomment one to
# change it. Any value can also be set by an environment variable APPLIANCE_<SECTION>__<KEY>, e.g.
# APPLIANCE_DICOM__PORT=11113. Relative paths are relative to this home. An unknown key is an error.
"""

_RULES = """
# Routing: the first rule that matches a complete series names the model (its active version).
[[inference.rules]]
model = "lesion_ct_segmentation"   # the bundled demo model: synthetic phantoms, NOT FOR CLINICAL USE
modality = ["CT"]
sop_classes = ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"]
min_slices = 10
"""

_PROFILE = """
# A de-identification profile of your own: the Basic Profile plus any of the Annex E options.
# [deidentify.profiles.trial]
# options = ["retain_modified_dates", "clean_descriptors", "retain_safe_private"]
# safe_private = [{ creator = "ACME SAFE", group = 0x0019, element = 0x10 }]
"""

_WRITTEN_APART = {("inference", "rules"), ("deidentify", "profiles"), ("home",)}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return _toml(value.value)
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, int | float | str | list):
        return json.dumps(value)
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _setting(name: str, value: Any, description: str | None) -> str:
    shown = f"# {name} = {_toml(value)}" if value is not None else f"# {name} = ..."
    return f"{shown:<50} # {description}" if description else shown


def _section(model: type[BaseModel], path: tuple[str, ...], lines: list[str]) -> None:
    nested = []
    if path:
        doc = (model.__doc__ or "").strip().splitlines()
        lines += ["", f"[{'.'.join(path)}]"] + (
            [f"# {doc[0]}"] if doc and model.__doc__ != BaseModel.__doc__ else []
        )
    for name, field in model.model_fields.items():
        if path + (name,) in _WRITTEN_APART:
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested.append((annotation, path + (name,)))
            continue
        default = field.get_default(call_default_factory=True)
        lines.append(_setting(name, default, field.description))
    for sub, sub_path in nested:
        _section(sub, sub_path, lines)


def default_config() -> str:
    lines: list[str] = []
    _section(Settings, (), lines)
    return _HEADER + "\n".join(lines).lstrip("\n") + "\n" + _RULES + _PROFILE
