"""Which model made a result, as every process names it (no PyTorch here: the web process and the
gateway read it too)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelIdentity:
    """Which model made a result: its name, version, the SHA-256 of its signed manifest, and the
    use its bundle declares (MONAI's ``intended_use``, else its ``task``)."""

    name: str
    version: str
    digest: str
    intended_use: str = ""

    @property
    def for_clinical_use(self) -> bool:
        """False when the bundle itself says it is not for clinical (or diagnostic) use."""
        declared = self.intended_use.lower()
        return not any(f"not for {use} use" in declared for use in ("clinical", "diagnostic"))
