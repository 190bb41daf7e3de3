"""The modification protocol (``configs/validation.json`` of the version in force): which metrics,
the non-inferiority margin of each (per class if wanted), the minimum number of cases, the required
subgroups, and the bootstrap. It is written before a candidate exists, by the active version's
publisher, so a candidate cannot loosen the test it must pass.

    {"metrics": {"dice": {"margin": 0.05}, "hd95": {"margin": 5.0},
                 "surface_dice": {"margin": 0.05, "tolerance_mm": 2.0}},
     "class_margins": {"lesion": {"dice": 0.03}},
     "min_cases": 3, "subgroups": {"modality": ["CT"]}, "min_subgroup_cases": 1,
     "bootstrap": {"resamples": 2000, "confidence": 0.95, "seed": 0},
     "equivalence": {"min_dice": 0.99}}

``equivalence`` is what a version derived for another backend (``models optimize``) must keep:
the Dice between its labels and the source version's, per class, on every held-out series.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from models.errors import ModelError
from models.validation.metrics import DIRECTIONS

PROTOCOL = "configs/validation.json"
DEFAULT_METRICS = {"dice": 0.05, "hd95": 5.0, "surface_dice": 0.05}


class ProtocolError(ModelError):
    """The protocol file is malformed: the message names the field."""


@dataclass(frozen=True)
class Protocol:
    margins: dict[str, float]  # metric -> non-inferiority margin (its own unit: Dice, mm)
    class_margins: dict[str, dict[str, float]] = field(default_factory=dict)
    tolerance_mm: float = 2.0  # surface Dice's
    min_cases: int = 3
    subgroups: dict[str, list[str]] = field(default_factory=dict)  # e.g. {"modality": ["CT"]}
    min_subgroup_cases: int = 1
    resamples: int = 2000
    confidence: float = 0.95
    seed: int = 0
    equivalence_min_dice: float = 0.99
    source: str = "the appliance's default protocol"

    def margin(self, class_name: str, metric: str) -> float:
        return self.class_margins.get(class_name, {}).get(metric, self.margins[metric])

    def as_dict(self) -> dict:
        return asdict(self)


def default_protocol() -> Protocol:
    return Protocol(margins=dict(DEFAULT_METRICS))


def read_protocol(bundle: Path, source: str) -> Protocol:
    """The bundle's protocol, or the default when it has none."""
    path = bundle / PROTOCOL
    if not path.is_file():
        return default_protocol()
    try:
        raw = json.loads(path.read_text())
        metrics = raw.get("metrics") or {name: {"margin": m} for name, m in DEFAULT_METRICS.items()}
        unknown = sorted(set(metrics) - set(DIRECTIONS))
        if unknown:
            raise ProtocolError(f"{PROTOCOL}: unknown metric {unknown[0]!r} (known: {', '.join(DIRECTIONS)})")
        boot = raw.get("bootstrap", {})
        return Protocol(
            margins={name: float(spec["margin"]) for name, spec in metrics.items()},
            class_margins={
                c: {m: float(v) for m, v in ms.items()} for c, ms in raw.get("class_margins", {}).items()
            },
            tolerance_mm=float(metrics.get("surface_dice", {}).get("tolerance_mm", 2.0)),
            min_cases=int(raw.get("min_cases", 3)),
            subgroups={str(k): [str(v) for v in vs] for k, vs in raw.get("subgroups", {}).items()},
            min_subgroup_cases=int(raw.get("min_subgroup_cases", 1)),
            resamples=int(boot.get("resamples", 2000)),
            confidence=float(boot.get("confidence", 0.95)),
            seed=int(boot.get("seed", 0)),
            equivalence_min_dice=float(raw.get("equivalence", {}).get("min_dice", 0.99)),
            source=source,
        )
    except ProtocolError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProtocolError(f"{PROTOCOL} of {source} is malformed ({type(exc).__name__}: {exc})") from None
