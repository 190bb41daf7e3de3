"""Sinks and a source policy for tests of the gateway alone (no appliance, database or store)."""

from __future__ import annotations

from dicom_gateway import status
from dicom_gateway.errors import RejectedInstance
from dicom_gateway.policy import AssociationRequest, RejectReason
from dicom_gateway.received import ReceivedInstance


class AllowSCU:
    """Only the AE title SCU may associate."""

    def evaluate(self, request: AssociationRequest) -> RejectReason | None:
        return None if request.calling_ae == "SCU" else RejectReason.CALLING_AE_NOT_RECOGNISED


class MemoryStore:
    """Keeps what it is given; remembers which receipts the gateway says are audited."""

    def __init__(self) -> None:
        self.instances: list[ReceivedInstance] = []
        self.recorded: list[object] = []

    def store(self, instance: ReceivedInstance) -> int:
        self.instances.append(instance)
        return len(self.instances)

    def receipts_recorded(self, keys: list[object]) -> None:
        self.recorded.extend(keys)


class FullStore(MemoryStore):
    def store(self, instance: ReceivedInstance) -> int:
        raise RejectedInstance(status.OUT_OF_RESOURCES, "the sink is full")


class BrokenStore(MemoryStore):
    def store(self, instance: ReceivedInstance) -> int:
        raise RuntimeError("DOE^JANE could not be written")  # PHI in a message: never to the peer
