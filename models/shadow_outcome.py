"""What a version in shadow did on a series beside the active one (a message from the inference
process, read by the web process: no PyTorch here)."""

from __future__ import annotations

from dataclasses import dataclass

from models.identity import ModelIdentity


@dataclass(frozen=True)
class ShadowOutcome:
    """What a shadow version did on the series beside the active one; never written as results."""

    model: ModelIdentity
    agreement: dict[str, float]  # segment label -> Dice between its labels and the active version's
    volumes_ml: dict[str, float]
    seconds: float | None  # its network and postprocessing
    active_seconds: float
    failure: str | None = None
