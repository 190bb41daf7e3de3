"""The storage SCP: C-ECHO and C-STORE for every storage SOP class, source policy, TLS, audit.

Success (0x0000) is returned only after the :class:`InstanceSink` returned, i.e. after the
instance is durable. Every failure becomes a DICOM status with an Error Comment; no exception
reaches the peer and the server keeps serving other associations.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import Verification

from audit.events import (
    Action,
    AuditEvent,
    EventID,
    Outcome,
    Participant,
    ParticipantObject,
)
from audit.sink import AuditSink
from dicom_gateway import status
from dicom_gateway.admission import Admission, AdmissionLimits
from dicom_gateway.association import AcceptedContext, AssociationLimits, AssociationService, Peer
from dicom_gateway.dimse import Command
from dicom_gateway.errors import RejectedInstance
from dicom_gateway.limits import AssociationGate, SharedCounter, StoreOutcomes, check_room
from dicom_gateway.policy import AssociationRequest, RejectReason, SourcePolicy
from dicom_gateway.received import ReceivedInstance, parse_instance
from dicom_gateway.server import GatewayServer, Handoff
from dicom_gateway.tls import certificate_names

log = logging.getLogger(__name__)

TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]
# abstract syntax -> the transfer syntaxes accepted for it
SUPPORTED_CONTEXTS = {
    **{str(context.abstract_syntax): TRANSFER_SYNTAXES for context in AllStoragePresentationContexts},
    Verification: TRANSFER_SYNTAXES[:3],
}


class InstanceSink(Protocol):
    def store(self, instance: ReceivedInstance) -> object:
        """Make ``instance`` durable before returning (and return its key); raise RejectedInstance
        to refuse it."""

    def receipts_recorded(self, keys: list[object]) -> None:
        """The audit record of these stored instances' transfer is durable (keys from ``store``);
        whatever the sink holds of a receipt not yet so recorded, it may recover after a crash."""


@dataclass
class GatewayConfig:
    ae_title: str
    host: str
    port: int
    max_associations: int
    max_instance_bytes: int
    min_free_bytes: int
    free_space_path: Path
    network_timeout: float
    max_pdu: int = 0
    tls_context: ssl.SSLContext | None = None
    handshake_timeout: float = 10.0
    admission: AdmissionLimits = field(default_factory=AdmissionLimits)


@dataclass
class _Outcome:
    """The instances of an association that were stored, or that were not: how many, whose, why."""

    count: int = 0
    studies: set[str] = field(default_factory=set)
    patients: set[str] = field(default_factory=set)
    reasons: Counter[str] = field(default_factory=Counter)  # the failure statuses and their comments

    def description(self) -> str:
        refused = "; ".join(f"{reason} (x{n})" for reason, n in sorted(self.reasons.items()))
        return f"instances={self.count}" + (f"; refused: {refused}" if refused else "")


@dataclass
class _AssociationTally:
    calling_ae: str
    host: str
    outcomes: dict[bool, _Outcome] = field(default_factory=dict)
    stored: list[object] = field(default_factory=list)  # the sink's keys of the instances stored


class StorageSCP:
    def __init__(
        self,
        config: GatewayConfig,
        policy: SourcePolicy,
        sink: InstanceSink,
        audit: AuditSink,
        security_events: SharedCounter | None = None,
        gate: AssociationGate | None = None,
        connections: SharedCounter | None = None,
        handoff: Handoff | None = None,
        refused_connections: SharedCounter | None = None,
        outcomes: StoreOutcomes | None = None,
    ) -> None:
        self.config = config
        self.policy = policy
        self.sink = sink
        self.audit = audit
        self.security_events = security_events or SharedCounter()
        self.gate = gate or AssociationGate(config.max_associations)
        # Connections assigned to this SCP and not yet closed: whoever assigns a connection (the
        # appliance's dispatcher) adds one; this SCP takes it off when the connection ends.
        self.connections = connections
        self.handoff = handoff
        self.refused_connections = refused_connections or SharedCounter()
        self.outcomes = outcomes or StoreOutcomes()
        self.admission = Admission(config.admission, self._on_connection_refused)
        self._lock = threading.Lock()
        self._tallies: dict[int, _AssociationTally] = {}
        self._admitted: set[int] = set()
        self._server: GatewayServer | None = None

        self.service = AssociationService(
            self,
            AssociationLimits(
                max_request=config.admission.max_request_bytes,
                max_pdu=config.max_pdu,
                network_timeout=config.network_timeout,
                max_dataset_bytes=config.max_instance_bytes,
            ),
            SUPPORTED_CONTEXTS,
        )

    # -- lifecycle ------------------------------------------------------------------------
    def _make_server(self, host: str, port: int, listen: bool = True) -> GatewayServer:
        return GatewayServer(
            (host, port),
            self.service.serve,
            tls_context=self.config.tls_context,
            on_refused=self._on_handshake_refused,
            handshake_timeout=self.config.handshake_timeout,
            admission=self.admission,
            handoff=self.handoff,
            listen=listen,
        )

    def start(self) -> int:
        """Listen on the configured port; return the port (useful when it was 0)."""
        server = self._make_server(self.config.host, self.config.port)
        self._server = server
        server.listening = True
        threading.Thread(target=server.serve_forever, name="dicom-accept", daemon=True).start()
        return int(server.server_address[1])

    def start_detached(self) -> None:
        """Serve only connections handed over with :meth:`adopt` (a worker process)."""
        server = self._make_server("127.0.0.1", 0, listen=False)
        server.socket.close()
        self._server = server

    def adopt(self, connection: socket.socket, address: tuple[str, int]) -> None:
        """Serve a connection accepted elsewhere (by the main process)."""
        assert self._server is not None, "start or start_detached first"
        self._server.dispatch(connection, address)  # screened by the process that accepted it

    @property
    def running(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # -- association ------------------------------------------------------------------------
    def _security_alert(self, host: str, who: str, description: str, type_code: str) -> None:
        self.security_events.add()
        self.audit.emit(
            AuditEvent(
                event_id=EventID.SECURITY_ALERT,
                action=Action.EXECUTE,
                outcome=Outcome.MINOR_FAILURE,
                type_code=type_code,
                participants=(Participant(user_id=who, host=host, is_requestor=True),),
                objects=(ParticipantObject("security-resource", self.config.ae_title),),
                description=description,
            )
        )

    def _on_connection_refused(self, host: str, reason: str, repeated: bool) -> None:
        """A connection refused before its association was negotiated (see dicom_gateway.admission)."""
        self.refused_connections.add()
        log.warning("connection from %s refused: %s", host, reason)
        if repeated:
            self._security_alert(host, "unknown", f"repeated refused connections: {reason}", "Network Entry")

    def _on_handshake_refused(self, address: tuple[str, int], reason: str) -> None:
        if self.connections is not None:
            self.connections.add(-1)
        self._security_alert(address[0], "unknown (TLS refused)", reason, "Node Authentication")

    def _request_of(self, peer: Peer) -> AssociationRequest:
        assert peer.request is not None
        subject, common_name = certificate_names(peer.connection)
        return AssociationRequest(
            calling_ae=peer.request.calling_ae,
            called_ae=peer.request.called_ae,
            host=peer.host,
            port=peer.port,
            tls=self.config.tls_context is not None,
            certificate_subject=subject,
            certificate_common_name=common_name,
        )

    def _reject(self, request: AssociationRequest, reason: RejectReason) -> None:
        log.warning(
            "association from %s@%s rejected: %s", request.calling_ae, request.host, reason.description
        )
        self._security_alert(request.host, request.calling_ae, reason.description, "Association Rejected")

    # -- the association handler (dicom_gateway.association) --------------------------------------
    def requested(self, peer: Peer) -> RejectReason | None:
        try:
            request = self._request_of(peer)
            if request.called_ae != self.config.ae_title:
                reason: RejectReason | None = RejectReason.CALLED_AE_NOT_RECOGNISED
            else:
                reason = self.policy.evaluate(request)
        except Exception as exc:  # a policy failure must close the door, not open it
            log.error("source policy failed (%s); rejecting association", type(exc).__name__)
            request = AssociationRequest("?", "?", peer.host, 0, False, None, None)
            reason = RejectReason.CALLING_AE_NOT_RECOGNISED
        if reason is None:
            if self.gate.try_enter():
                with self._lock:
                    self._admitted.add(id(peer))
                return None
            reason = RejectReason.TOO_MANY_ASSOCIATIONS
        self._reject(request, reason)
        return reason

    def established(self, peer: Peer) -> None:
        request = self._request_of(peer)
        with self._lock:
            self._tallies[id(peer)] = _AssociationTally(request.calling_ae, request.host)
        log.info("association from %s@%s accepted", request.calling_ae, request.host)
        self.audit.emit(
            AuditEvent(
                event_id=EventID.APPLICATION_ACTIVITY,
                action=Action.EXECUTE,
                outcome=Outcome.SUCCESS,
                type_code="Association Accepted",
                participants=(
                    Participant(request.calling_ae, request.host, is_requestor=True),
                    Participant(request.called_ae, self.config.host),
                ),
                description=f"tls={request.tls}",
            )
        )

    def refused(self, host: str, reason: str) -> None:
        self.admission.refuse(host, reason)

    def closed(self, peer: Peer) -> None:
        with self._lock:
            tally = self._tallies.pop(id(peer), None)
            admitted = id(peer) in self._admitted
            self._admitted.discard(id(peer))
        if admitted:
            self.gate.leave()
        if self.connections is not None:
            self.connections.add(-1)
        if tally is None:
            return
        for succeeded, outcome in sorted(tally.outcomes.items()):
            self.audit.emit(
                AuditEvent(
                    event_id=EventID.INSTANCES_TRANSFERRED,
                    action=Action.CREATE,
                    outcome=Outcome.SUCCESS if succeeded else Outcome.MINOR_FAILURE,
                    participants=(
                        Participant(tally.calling_ae, tally.host, is_requestor=True, role="Source"),
                        Participant(self.config.ae_title, self.config.host, role="Destination"),
                    ),
                    objects=(
                        *(ParticipantObject("patient", pid) for pid in sorted(outcome.patients)),
                        *(ParticipantObject("study", uid) for uid in sorted(outcome.studies)),
                    ),
                    description=outcome.description(),
                )
            )
        if not tally.stored:
            return
        try:  # the transfer events are durable: the sink need not recover these receipts at start
            self.audit.flush()
            self.sink.receipts_recorded(tally.stored)
        except Exception as exc:  # left to the sink's recovery at the next start
            log.error(
                "could not confirm the audit record of %d receipts (%s)",
                len(tally.stored),
                type(exc).__name__,
            )

    def _count(
        self,
        peer: Peer,
        instance: ReceivedInstance | None,
        key: object = None,
        refused: str | None = None,
    ) -> None:
        """One C-STORE's outcome: stored (``key`` from the sink), or ``refused`` (status and comment)."""
        with self._lock:
            tally = self._tallies.get(id(peer))
            if tally is None:
                return
            outcome = tally.outcomes.setdefault(refused is None, _Outcome())
            outcome.count += 1
            if refused is not None:
                outcome.reasons[refused] += 1
            if instance is not None:
                outcome.studies.add(instance.study_uid)
                outcome.patients.add(instance.patient.patient_id)
            if refused is None:
                tally.stored.append(key)

    def store(
        self, peer: Peer, context: AcceptedContext, command: Command, fragments: list[memoryview], size: int
    ) -> tuple[int, str | None]:
        instance = None
        try:
            config = self.config
            check_room(size, config.max_instance_bytes, config.min_free_bytes, config.free_space_path)
            assert peer.request is not None
            instance = parse_instance(
                b"".join(fragments),
                UID(context.transfer_syntax),
                context.abstract_syntax,
                command.sop_instance_uid,
                calling_ae=peer.request.calling_ae,
                called_ae=config.ae_title,
            )
            key = self.sink.store(instance)
        except RejectedInstance as rejected:
            log.warning("C-STORE refused with 0x%04X: %s", rejected.status, rejected.comment)
            self.outcomes.refused(rejected.status)
            self._count(peer, instance, refused=f"0x{rejected.status:04X} {rejected.comment}")
            return rejected.status, rejected.comment
        except Exception as exc:  # never let it reach the peer; the message may hold PHI, so not logged
            log.error("C-STORE failed internally (%s)", type(exc).__name__)
            comment = f"internal error ({type(exc).__name__})"
            self.outcomes.refused(status.PROCESSING_FAILURE)
            self._count(peer, instance, refused=f"0x{status.PROCESSING_FAILURE:04X} {comment}")
            return status.PROCESSING_FAILURE, comment
        self.outcomes.stored()
        self._count(peer, instance, key)
        return status.SUCCESS, None
