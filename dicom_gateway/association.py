"""One association, served on its connection's own thread and woken only by the peer's data.

pynetdicom serves each association with two threads that poll every millisecond and pass each PDU
and message through queues; with four senders on two cores that machinery took about half of the
gateway's CPU (issue 20's profile). Here the connection's thread blocks in ``recv`` until a whole
PDU is there, reassembles the P-DATA fragments into the command and the data set, and answers
C-ECHO and C-STORE through an :class:`AssociationHandler` (the SCP: policy, storage, audit). A
C-STORE is acknowledged only once the handler has returned.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dicom_gateway import status
from dicom_gateway.dimse import C_ECHO_RQ, C_STORE_RQ, Command, decode_command, encode_response
from dicom_gateway.pdu import (
    ABORT,
    ABSTRACT_SYNTAX_NOT_SUPPORTED,
    ACCEPTED,
    ASSOCIATE_RQ,
    P_DATA_TF,
    RELEASE_RQ,
    TRANSFER_SYNTAXES_NOT_SUPPORTED,
    AssociateRequest,
    PduReader,
    PduRefused,
    PeerClosed,
    ProposedContext,
    decode_associate_rq,
    encode_abort,
    encode_associate_ac,
    encode_associate_rj,
    encode_command,
    encode_release_rp,
    pdvs,
)
from dicom_gateway.policy import RejectReason

log = logging.getLogger(__name__)

_COMMAND, _LAST = 0x01, 0x02  # bits of a PDV's message control header
_IMPLICIT_LITTLE_ENDIAN = "1.2.840.10008.1.2"
_ARTIM_SECONDS = 10.0  # how long a requestor has to close after our last PDU
_ARTIM_DISCARD_MAX = 65536
# A rejection is answered after a pause: it slows a peer that retries in a loop, and a pynetdicom
# requestor (3.0) reads an A-ASSOCIATE-RJ that arrives while its own thread is still starting as
# an abort (its DUL closes the connection on the rejection before the ACSE checks the connection).
_REJECT_PAUSE_SECONDS = 0.05  # bytes read (and dropped) meanwhile before we close anyway


@dataclass(frozen=True)
class AcceptedContext:
    abstract_syntax: str
    transfer_syntax: str


@dataclass
class Peer:
    """One connection and, once negotiated, its association."""

    connection: socket.socket
    host: str
    port: int
    request: AssociateRequest | None = None
    contexts: dict[int, AcceptedContext] = field(default_factory=dict)


@dataclass(frozen=True)
class AssociationLimits:
    max_request: int  # bytes of an A-ASSOCIATE-RQ
    max_pdu: int  # the P-DATA-TF length we advertise and enforce (0: no limit)
    network_timeout: float  # seconds a negotiated association may stay silent
    max_dataset_bytes: int  # beyond this a data set's fragments are read and dropped, not kept


class AssociationHandler(Protocol):
    def requested(self, peer: Peer) -> RejectReason | None:
        """None to accept ``peer.request``, else why it is rejected."""

    def established(self, peer: Peer) -> None: ...

    def store(
        self, peer: Peer, context: AcceptedContext, command: Command, fragments: list[memoryview], size: int
    ) -> tuple[int, str | None]:
        """Store the data set (``fragments``, ``size`` bytes in all; fewer are kept when it is over
        the limit); return the C-STORE status and Error Comment."""

    def refused(self, host: str, reason: str) -> None:
        """The connection is cut for a protocol violation or a missed deadline."""

    def closed(self, peer: Peer) -> None:
        """The connection is closed (however it ended; called once for every connection served)."""


def negotiate(
    proposed: Sequence[ProposedContext], supported: Mapping[str, Sequence[str]]
) -> list[tuple[int, int, str]]:
    """(context id, result, transfer syntax) for each proposed context: of the transfer syntaxes
    the requestor proposed, the first in our order of preference for its abstract syntax (Explicit
    VR Little Endian first: the data set is stored as it arrives, and explicit VRs keep their
    meaning without a dictionary)."""
    results = []
    for context in proposed:
        fallback = context.transfer_syntaxes[0] if context.transfer_syntaxes else _IMPLICIT_LITTLE_ENDIAN
        ours = supported.get(context.abstract_syntax)
        chosen = next((ts for ts in ours or () if ts in context.transfer_syntaxes), None)
        if ours is None:
            results.append((context.context_id, ABSTRACT_SYNTAX_NOT_SUPPORTED, fallback))
        elif chosen is None:
            results.append((context.context_id, TRANSFER_SYNTAXES_NOT_SUPPORTED, fallback))
        else:
            results.append((context.context_id, ACCEPTED, chosen))
    return results


class _Message:
    """The DIMSE message being received: its command, then its data set's fragments."""

    def __init__(self) -> None:
        self.command_bytes = bytearray()
        self.command: Command | None = None
        self.context_id = 0
        self.fragments: list[memoryview] = []
        self.size = 0


class AssociationService:
    """Serves connections: negotiation, then C-ECHO and C-STORE until release, abort or timeout."""

    def __init__(
        self, handler: AssociationHandler, limits: AssociationLimits, supported: Mapping[str, Sequence[str]]
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.supported = supported

    def serve(self, connection: socket.socket, address: tuple[str, int], deadline: float) -> None:
        """Serve ``connection`` until it ends; its whole A-ASSOCIATE-RQ must arrive by ``deadline``
        (a ``time.monotonic`` time). Never raises; the connection is shut down on return."""
        peer = Peer(connection, address[0], address[1])
        reader = PduReader(connection, self.limits.max_request, self.limits.max_pdu)
        try:
            if self._associate(peer, reader, deadline):
                self._exchange(peer, reader)
        except PduRefused as refused:
            log.warning("association from %s cut: %s", peer.host, refused.reason)
            self.handler.refused(peer.host, refused.reason)  # cut: what follows it is not read
        except TimeoutError:
            log.warning(
                "association from %s silent for %.0f s: aborted", peer.host, self.limits.network_timeout
            )
            _send_quietly(connection, encode_abort())
        except (PeerClosed, OSError):
            pass  # the peer went away, or the server is shutting down
        finally:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.handler.closed(peer)

    def _associate(self, peer: Peer, reader: PduReader, deadline: float) -> bool:
        try:
            pdu_type, body = reader.read(deadline)
        except TimeoutError:
            self.handler.refused(peer.host, "no association request before the deadline")
            return False
        if pdu_type != ASSOCIATE_RQ:
            raise PduRefused(f"first PDU of type 0x{pdu_type:02X}, not an A-ASSOCIATE-RQ")
        peer.request = request = decode_associate_rq(body)
        reason = self.handler.requested(peer)
        if reason is not None:
            time.sleep(_REJECT_PAUSE_SECONDS)
            peer.connection.sendall(encode_associate_rj(*reason.result_source_diagnostic))
            self._await_close(peer.connection)
            return False
        results = negotiate(request.contexts, self.supported)
        peer.contexts = {
            context_id: AcceptedContext(context.abstract_syntax, syntax)
            for (context_id, result, syntax), context in zip(results, request.contexts, strict=True)
            if result == ACCEPTED
        }
        peer.connection.settimeout(self.limits.network_timeout)
        peer.connection.sendall(encode_associate_ac(request, results, self.limits.max_pdu))
        self.handler.established(peer)
        return True

    def _await_close(self, connection: socket.socket) -> None:
        """After an A-ASSOCIATE-RJ or A-RELEASE-RP the requestor closes the connection (PS3.8
        state Sta13, under the ARTIM timer); what it sends meanwhile is read and dropped, so our
        close never resets a connection that still holds that last PDU."""
        connection.settimeout(min(_ARTIM_SECONDS, self.limits.network_timeout))
        left = _ARTIM_DISCARD_MAX
        while left > 0:
            try:
                read = len(connection.recv(min(left, 4096)))
            except OSError:
                return
            if not read:
                return
            left -= read

    def _exchange(self, peer: Peer, reader: PduReader) -> None:
        message = _Message()
        while True:
            pdu_type, body = reader.read()
            if pdu_type == P_DATA_TF:
                for context_id, control, fragment in pdvs(body):
                    if context_id not in peer.contexts:
                        raise PduRefused("PDV on a presentation context that was not accepted")
                    if self._take(peer, message, context_id, control, fragment):
                        message = _Message()
            elif pdu_type == RELEASE_RQ:
                peer.connection.sendall(encode_release_rp())
                self._await_close(peer.connection)
                return
            elif pdu_type == ABORT:
                return
            else:
                raise PduRefused(f"unexpected PDU of type 0x{pdu_type:02X} in an association")

    def _take(
        self, peer: Peer, message: _Message, context_id: int, control: int, fragment: memoryview
    ) -> bool:
        """Add one PDV to ``message``; True once the message was whole and has been answered."""
        if control & _COMMAND:
            if message.command is not None:
                raise PduRefused("a command fragment inside a data set")
            message.command_bytes += fragment
            if not control & _LAST:
                return False
            message.command = decode_command(bytes(message.command_bytes))
            message.context_id = context_id
            if message.command.has_dataset:
                return False
        else:
            if message.command is None or not message.command.has_dataset or context_id != message.context_id:
                raise PduRefused("a data set fragment without its command")
            message.size += len(fragment)
            if message.size <= self.limits.max_dataset_bytes:
                message.fragments.append(fragment)
            if not control & _LAST:
                return False
        self._answer(peer, message)
        return True

    def _answer(self, peer: Peer, message: _Message) -> None:
        command = message.command
        assert command is not None and peer.request is not None
        if command.command_field == C_ECHO_RQ:
            code, comment = status.SUCCESS, None
        elif command.command_field == C_STORE_RQ:
            context = peer.contexts[message.context_id]
            code, comment = self.handler.store(peer, context, command, message.fragments, message.size)
        else:
            raise PduRefused(f"DIMSE command 0x{command.command_field:04X} is not served here")
        response = encode_response(command, code, comment)
        peer.connection.sendall(
            b"".join(encode_command(message.context_id, response, peer.request.max_length))
        )


def _send_quietly(connection: socket.socket, data: bytes) -> None:
    try:
        connection.sendall(data)
    except OSError:
        pass
