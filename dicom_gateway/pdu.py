"""The DICOM Upper Layer's PDUs (PS3.8 section 9.3) as the storage SCP reads and writes them.

:class:`PduReader` reads a connection PDU by PDU and checks each header before a byte of its body
is read: an A-ASSOCIATE-RQ over ``max_request`` bytes, a P-DATA-TF over the maximum length we
advertised, or an unknown PDU type raises :class:`PduRefused`, so a peer's claim of gigabytes costs
nothing. The rest decodes the A-ASSOCIATE-RQ and encodes the few PDUs an acceptor sends.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from dicom_gateway.errors import GatewayError

ASSOCIATE_RQ, ASSOCIATE_AC, ASSOCIATE_RJ, P_DATA_TF, RELEASE_RQ, RELEASE_RP, ABORT = range(1, 8)
HEADER = struct.Struct(">BBL")
_SMALL_PDU_MAX = 1024  # AC, RJ, release RQ/RP and abort are a few bytes
_ITEM = struct.Struct(">BBH")
_PDV = struct.Struct(">LBB")
_APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"
_FIXED_RQ_FIELDS = 68  # protocol version, reserved, called and calling AE titles, reserved
_IMPLEMENTATION_UID = PYDICOM_IMPLEMENTATION_UID.encode()

# Presentation context results (PS3.8 Table 9-18)
ACCEPTED, ABSTRACT_SYNTAX_NOT_SUPPORTED, TRANSFER_SYNTAXES_NOT_SUPPORTED = 0, 3, 4


class PduRefused(GatewayError):
    """A PDU the gateway will not read: its header claims too much, or its type or content is
    wrong. ``reason`` says what, without peer data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PeerClosed(GatewayError):
    """The peer closed the connection (between PDUs, or inside one)."""


class PduReader:
    """Reads whole PDUs off one connection; the connection's timeout bounds each read."""

    def __init__(self, connection: socket.socket, max_request: int, max_data: int) -> None:
        self.connection = connection
        self.max_request = max_request
        self.max_data = max_data or 0xFFFFFFFF  # the maximum length we advertised (0: none)
        self._header = bytearray(HEADER.size)
        self._deadline: float | None = None

    def _limit(self, pdu_type: int) -> tuple[int, str]:
        if pdu_type == ASSOCIATE_RQ:
            return self.max_request, "A-ASSOCIATE-RQ"
        if pdu_type == P_DATA_TF:
            return self.max_data, "P-DATA-TF PDU"
        if ASSOCIATE_AC <= pdu_type <= ABORT:
            return _SMALL_PDU_MAX, f"PDU of type 0x{pdu_type:02X}"
        raise PduRefused(f"unknown PDU type 0x{pdu_type:02X}")

    def read(self, deadline: float | None = None) -> tuple[int, bytearray]:
        """The next PDU's type and body; by ``deadline`` (a ``time.monotonic`` time) when given,
        however slowly its bytes come, else within the connection's timeout of each read."""
        self._deadline = deadline
        self._fill(memoryview(self._header))
        pdu_type, _, length = HEADER.unpack(self._header)
        limit, what = self._limit(pdu_type)
        if length > limit:
            raise PduRefused(f"{what} of {length} bytes exceeds the limit of {limit}")
        body = bytearray(length)
        self._fill(memoryview(body))
        return pdu_type, body

    def _fill(self, view: memoryview) -> None:
        while view:
            if self._deadline is not None:
                self.connection.settimeout(remaining(self._deadline))
            count = self.connection.recv_into(view)
            if not count:
                raise PeerClosed("connection closed by the peer")
            view = view[count:]


@dataclass(frozen=True)
class ProposedContext:
    context_id: int
    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]


@dataclass
class AssociateRequest:
    """What an A-ASSOCIATE-RQ asks for (titles stripped of their padding)."""

    called_ae: str
    calling_ae: str
    contexts: list[ProposedContext] = field(default_factory=list)
    max_length: int = 0  # the largest P-DATA-TF PDU the requestor accepts (0: no limit)
    called_ae_field: bytes = b""  # the 16-byte fields as sent, echoed in the A-ASSOCIATE-AC
    calling_ae_field: bytes = b""


def unpadded(value: bytes | memoryview) -> str:
    """A UID or code as sent, without its padding (NUL or space)."""
    return bytes(value).rstrip(b"\x00 ").decode("ascii", "replace")


def _items(body: memoryview) -> list[tuple[int, memoryview]]:
    """The (type, value) items of a variable field; PduRefused if one overruns it."""
    items = []
    while body:
        if len(body) < _ITEM.size:
            raise PduRefused("truncated item in an association request")
        item_type, _, length = _ITEM.unpack_from(body)
        if _ITEM.size + length > len(body):
            raise PduRefused("an item overruns its association request")
        items.append((item_type, body[_ITEM.size : _ITEM.size + length]))
        body = body[_ITEM.size + length :]
    return items


def decode_associate_rq(body: bytes | bytearray) -> AssociateRequest:
    """The request in an A-ASSOCIATE-RQ's body (after the 6-byte PDU header)."""
    view = memoryview(body)
    if len(view) < _FIXED_RQ_FIELDS:
        raise PduRefused("association request shorter than its fixed fields")
    called, calling = bytes(view[4:20]), bytes(view[20:36])
    request = AssociateRequest(
        called_ae=called.decode("ascii", "replace").strip(),
        calling_ae=calling.decode("ascii", "replace").strip(),
        called_ae_field=called,
        calling_ae_field=calling,
    )
    for item_type, value in _items(view[_FIXED_RQ_FIELDS:]):
        if item_type == 0x20:  # presentation context
            if len(value) < 4:
                raise PduRefused("truncated presentation context in an association request")
            sub = _items(value[4:])
            abstract = [unpadded(v) for t, v in sub if t == 0x30]
            request.contexts.append(
                ProposedContext(
                    context_id=value[0],
                    abstract_syntax=abstract[0] if abstract else "",
                    transfer_syntaxes=tuple(unpadded(v) for t, v in sub if t == 0x40),
                )
            )
        elif item_type == 0x50:  # user information
            for sub_type, sub_value in _items(value):
                if sub_type == 0x51 and len(sub_value) == 4:
                    request.max_length = struct.unpack(">L", sub_value)[0]
    return request


def _item(item_type: int, value: bytes) -> bytes:
    return _ITEM.pack(item_type, 0, len(value)) + value


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return HEADER.pack(pdu_type, 0, len(body)) + body


def encode_associate_ac(
    request: AssociateRequest, results: list[tuple[int, int, str]], max_length: int
) -> bytes:
    """An A-ASSOCIATE-AC: ``results`` holds (context id, result, transfer syntax) per proposed
    context (the syntax is not significant where the context is refused), ``max_length`` the
    largest P-DATA-TF PDU we accept (0: no limit)."""
    contexts = b"".join(
        _item(0x21, bytes((context_id, 0, result, 0)) + _item(0x40, syntax.encode()))
        for context_id, result, syntax in results
    )
    user = _item(0x51, struct.pack(">L", max_length)) + _item(0x52, _IMPLEMENTATION_UID)
    fixed = b"\x00\x01\x00\x00" + request.called_ae_field + request.calling_ae_field + bytes(32)
    return _pdu(ASSOCIATE_AC, fixed + _item(0x10, _APPLICATION_CONTEXT) + contexts + _item(0x50, user))


def encode_associate_rj(result: int, source: int, diagnostic: int) -> bytes:
    return _pdu(ASSOCIATE_RJ, bytes((0, result, source, diagnostic)))


def encode_release_rp() -> bytes:
    return _pdu(RELEASE_RP, bytes(4))


def encode_abort(source: int = 0x02, reason: int = 0x00) -> bytes:
    """An A-ABORT; by default from the service provider, reason not specified."""
    return _pdu(ABORT, bytes((0, 0, source, reason)))


def encode_command(context_id: int, command: bytes, max_length: int) -> list[bytes]:
    """P-DATA-TF PDUs carrying a DIMSE command set, fragmented to the peer's ``max_length``."""
    room = (max_length or 0xFFFFFFFF) - _PDV.size - HEADER.size
    if room <= 0:
        raise PduRefused(f"the peer's maximum PDU length of {max_length} holds no data")
    pdus = []
    for start in range(0, len(command), room):
        fragment = command[start : start + room]
        last = start + room >= len(command)
        pdv = _PDV.pack(len(fragment) + 2, context_id, 0x03 if last else 0x01) + fragment
        pdus.append(_pdu(P_DATA_TF, pdv))
    return pdus


def pdvs(body: bytearray) -> list[tuple[int, int, memoryview]]:
    """The (context id, message control header, fragment) of each PDV in a P-DATA-TF body."""
    view = memoryview(body)
    found = []
    while view:
        if len(view) < _PDV.size:
            raise PduRefused("truncated PDV item")
        length, context_id, control = _PDV.unpack_from(view)
        if length < 2 or 4 + length > len(view):
            raise PduRefused("a PDV item overruns its P-DATA-TF PDU")
        found.append((context_id, control, view[_PDV.size : 4 + length]))
        view = view[4 + length :]
    return found


def remaining(deadline: float) -> float:
    """Seconds left until ``deadline`` (a ``time.monotonic`` time); TimeoutError when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left
