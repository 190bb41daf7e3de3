"""What a compliance report holds: findings with their evidence, and the report that signs them."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import Any

PAYLOAD_TYPE = "application/vnd.imaging-appliance.compliance-report+json"


class Severity(enum.IntEnum):
    """How much a failed check matters; a passed check is reported at its severity too."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @classmethod
    def named(cls, name: str) -> Severity:
        return cls[name.upper()]


@dataclass(frozen=True)
class Finding:
    """One check: whether it passed, a line saying what was found, and the evidence for it."""

    check: str
    title: str
    severity: Severity
    passed: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "severity": self.severity.name.lower()}


@dataclass(frozen=True)
class ComplianceReport:
    """A report as signed: when, over which period, under which policy, and what was found."""

    appliance: str
    generated_at: str
    since: str
    trigger: str
    policy: dict[str, Any]
    findings: tuple[Finding, ...]
    fingerprint: dict[str, str]

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if not f.passed]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "findings": [f.as_dict() for f in self.findings]}

    def payload(self) -> bytes:
        return json.dumps(self.as_dict(), sort_keys=True, default=str).encode()
