"""SNOMED CT codes for segment labels: a bundle's ``channel_def`` names to DICOM coded concepts.

A bundle's own ``configs/metadata.json`` may give codes under ``segment_codes`` (label ->
``{"category": [scheme, value, meaning], "type": [...]}``); otherwise the label is looked up here
(case and spacing ignored, with the aliases real Model Zoo bundles use). A label known to neither
is refused: a result with a wrong code is worse than no result.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import ModelError

SCT = "SCT"


class UnknownLabel(ModelError):
    """A segment label has no code in the bundle's metadata or in this table."""


@dataclass(frozen=True)
class Concept:
    scheme: str
    value: str
    meaning: str


@dataclass(frozen=True)
class SegmentCode:
    category: Concept
    type: Concept


ANATOMY = Concept(SCT, "123037004", "Anatomical Structure")
ABNORMAL = Concept(SCT, "49755003", "Morphologically Abnormal Structure")

_ORGANS = {
    "spleen": ("78961009", "Spleen"),
    "liver": ("10200004", "Liver"),
    "kidney": ("64033007", "Kidney"),
    "right kidney": ("9846003", "Right kidney"),
    "left kidney": ("18639004", "Left kidney"),
    "gallbladder": ("28231008", "Gallbladder"),
    "esophagus": ("32849002", "Esophagus"),
    "stomach": ("69695003", "Stomach"),
    "aorta": ("15825003", "Aorta"),
    "inferior vena cava": ("64131007", "Inferior vena cava"),
    "portal vein": ("32764006", "Portal vein"),
    "vein": ("29092000", "Vein"),
    "pancreas": ("15776009", "Pancreas"),
    "right adrenal gland": ("24915002", "Right adrenal gland"),
    "left adrenal gland": ("23451007", "Left adrenal gland"),
}
_ALIASES = {
    "ivc": "inferior vena cava",
    "left kideny": "left kidney",  # spelled so in swin_unetr_btcv_segmentation's metadata
    "portal and splenic veins": "vein",  # no single SNOMED concept covers both veins
}
_TABLE: dict[str, SegmentCode] = {
    name: SegmentCode(ANATOMY, Concept(SCT, value, meaning)) for name, (value, meaning) in _ORGANS.items()
}
_TABLE["lesion"] = SegmentCode(ABNORMAL, Concept(SCT, "52988006", "Lesion"))


def _normal(label: str) -> str:
    return " ".join(label.lower().replace("_", " ").split())


def _concept(triple: list[str]) -> Concept:
    scheme, value, meaning = triple
    return Concept(scheme, value, meaning)


def code_for(label: str, bundle_codes: dict[str, dict[str, list[str]]] | None = None) -> SegmentCode:
    if bundle_codes and label in bundle_codes:
        given = bundle_codes[label]
        try:
            return SegmentCode(_concept(given["category"]), _concept(given["type"]))
        except (KeyError, ValueError) as exc:
            raise UnknownLabel(f"segment_codes for {label!r} need category and type triples") from exc
    key = _normal(label)
    code = _TABLE.get(_ALIASES.get(key, key))
    if code is None:
        raise UnknownLabel(
            f"no SNOMED CT code for segment label {label!r}; add it to the bundle's segment_codes"
        )
    return code
