"""Who may open an association: the request as the gateway sees it, and the policy protocol."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class RejectReason(enum.Enum):
    """A-ASSOCIATE-RJ (result, source, diagnostic) per PS3.8 Table 9-21, with a description."""

    CALLING_AE_NOT_RECOGNISED = ((0x01, 0x01, 0x03), "calling AE title not recognised")
    CALLED_AE_NOT_RECOGNISED = ((0x01, 0x01, 0x07), "called AE title not recognised")
    HOST_NOT_ALLOWED = ((0x01, 0x01, 0x03), "calling AE title not allowed from this host")
    CERTIFICATE_NOT_BOUND = ((0x01, 0x01, 0x03), "TLS client certificate not bound to this AE title")
    NO_CLIENT_CERTIFICATE = ((0x01, 0x01, 0x03), "TLS client certificate required")
    TOO_MANY_ASSOCIATIONS = ((0x02, 0x03, 0x02), "local limit of associations exceeded")

    @property
    def result_source_diagnostic(self) -> tuple[int, int, int]:
        return self.value[0]

    @property
    def description(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class AssociationRequest:
    calling_ae: str
    called_ae: str
    host: str
    port: int
    tls: bool
    certificate_subject: str | None
    certificate_common_name: str | None


class SourcePolicy(Protocol):
    def evaluate(self, request: AssociationRequest) -> RejectReason | None:
        """None to accept the association, else the reason to reject it."""
