"""PDU sizes checked on their headers, before a byte of the body is read into memory.

pynetdicom reads a PDU's 6-byte header, then as many bytes as the header's length field claims
(up to 4 GiB), and never compares a P-DATA-TF PDU with the maximum length it advertised. The
socket classes here follow the PDU boundaries of everything the peer sends through ``recv`` and
raise :class:`PduRefused` (an ``OSError``, which pynetdicom treats as the connection closing) on a
header that claims more than allowed: an A-ASSOCIATE-RQ over ``max_request`` bytes, a P-DATA-TF
over the advertised maximum, or an unknown PDU type. The socket is then shut down.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Callable
from typing import Any

_HEADER = struct.Struct(">BBL")
ASSOCIATE_RQ, P_DATA_TF = 0x01, 0x04
_SMALL_PDU_TYPES = {0x02, 0x03, 0x05, 0x06, 0x07}  # AC, RJ, release RQ/RP, abort: a few bytes
_SMALL_PDU_MAX = 1024


class PduRefused(OSError):
    """A PDU header claimed more than the gateway accepts; ``reason`` says what."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PduFraming:
    """Follows a peer's byte stream PDU by PDU and checks each header as it completes."""

    def __init__(
        self,
        max_request: int,
        max_data: int,
        on_request_read: Callable[[], None],
        on_refused: Callable[[str], None],
    ) -> None:
        self.max_request = max_request
        self.max_data = max_data  # the advertised maximum length (0: none advertised)
        self.on_request_read = on_request_read  # the whole A-ASSOCIATE-RQ has been read
        self.on_refused = on_refused
        self.request_read = False
        self._header = bytearray()
        self._body_left = 0
        self._in_request = False

    def _limit(self, pdu_type: int) -> tuple[int, str]:
        if pdu_type == ASSOCIATE_RQ:
            return self.max_request, "A-ASSOCIATE-RQ"
        if pdu_type == P_DATA_TF:
            return (self.max_data or 0xFFFFFFFF), "P-DATA-TF PDU"
        if pdu_type in _SMALL_PDU_TYPES:
            return _SMALL_PDU_MAX, f"PDU of type 0x{pdu_type:02X}"
        raise PduRefused(f"unknown PDU type 0x{pdu_type:02X}")

    def feed(self, data: bytes) -> None:
        """Account for ``data`` read from the peer; raise :class:`PduRefused` on a header over its limit."""
        view = memoryview(data)
        while view:
            if self._body_left:
                taken = min(self._body_left, len(view))
                self._body_left -= taken
                view = view[taken:]
                if not self._body_left and self._in_request:
                    self._request_complete()
                continue
            needed = _HEADER.size - len(self._header)
            self._header += view[:needed]
            view = view[needed:]
            if len(self._header) < _HEADER.size:
                return
            pdu_type, _, length = _HEADER.unpack(self._header)
            self._header.clear()
            try:
                limit, what = self._limit(pdu_type)
                if length > limit:
                    raise PduRefused(f"{what} of {length} bytes exceeds the limit of {limit}")
            except PduRefused as refused:
                self.on_refused(refused.reason)
                raise
            self._body_left = length
            self._in_request = pdu_type == ASSOCIATE_RQ
            if not length and self._in_request:
                self._request_complete()

    def _request_complete(self) -> None:
        self._in_request = False
        if not self.request_read:
            self.request_read = True
            self.on_request_read()


class _Framed:
    """``recv`` that passes what it reads through the connection's :class:`PduFraming`."""

    framing: PduFraming | None = None

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data: bytes = super().recv(bufsize, flags)  # type: ignore[misc]
        if self.framing is not None and not flags & socket.MSG_PEEK:
            try:
                self.framing.feed(data)
            except PduRefused:
                self.shutdown(socket.SHUT_RDWR)  # type: ignore[attr-defined]
                raise
        return data


class FramedSocket(_Framed, socket.socket):
    """A plain TCP connection whose PDU headers are checked as they are read."""

    @classmethod
    def adopt(cls, connection: socket.socket, framing: PduFraming) -> FramedSocket:
        """Take over ``connection`` (the same file descriptor and timeout)."""
        timeout = connection.gettimeout()
        framed = cls(connection.family, connection.type, connection.proto, fileno=connection.detach())
        framed.settimeout(timeout)
        framed.framing = framing
        return framed


class FramedSSLSocket(_Framed, ssl.SSLSocket):
    """A TLS connection whose PDU headers are checked as they are read (``SSLContext.sslsocket_class``)."""


def framed_tls(context: ssl.SSLContext) -> ssl.SSLContext:
    """``context``, made to wrap server connections as :class:`FramedSSLSocket`."""
    context.sslsocket_class = FramedSSLSocket  # type: ignore[assignment]
    return context


def set_framing(connection: Any, framing: PduFraming) -> None:
    if isinstance(connection, _Framed):
        connection.framing = framing
