"""Before authentication: connections that have not yet asked for an association are screened
apart, so that they cannot use up the capacity of those that have.

A server that counts every TCP connection against its association limit from the moment it is
accepted (as pynetdicom's does) lets idle connections from anyone lock legitimate senders out.
Here, in the accepting process, a plain TCP connection whose whole A-ASSOCIATE-RQ has arrived as
it is accepted (the usual case) is judged at once; any other stays in a small pool of its own
(``pending_total``, at most ``pending_per_address`` from one address) until its whole
A-ASSOCIATE-RQ has arrived, read with ``MSG_PEEK`` so that it stays in the socket for the SCP,
under one deadline for the whole request (not per read) and refused on its header when it claims
more than ``max_request_bytes``.
Only then is it handed to an SCP, where the allow-list and the association limit apply.

Every refusal is counted and reported to ``on_refused`` (address and reason only), with
``repeated`` true when one address has been refused ``alert_after`` times within
``alert_window_seconds`` (then at most once per window), for a Security Alert.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from dicom_gateway.pdu import ASSOCIATE_RQ
from dicom_gateway.pdu import HEADER as _HEADER

_AE_TITLES = slice(10, 42)  # called and calling AE titles, 16 bytes each, after the protocol version


@dataclass(frozen=True)
class AdmissionLimits:
    pending_total: int = 64  # connections without a whole A-ASSOCIATE-RQ yet, from all addresses
    pending_per_address: int = 8
    request_deadline_seconds: float = 10.0  # from accept to the whole A-ASSOCIATE-RQ
    max_request_bytes: int = 65536
    alert_after: int = 5
    alert_window_seconds: float = 60.0


Refused = Callable[[str, str, bool], None]  # (address, reason, repeated)


class Admission:
    """The pool of connections not yet past their A-ASSOCIATE-RQ, and the refusals."""

    def __init__(self, limits: AdmissionLimits, on_refused: Refused) -> None:
        self.limits = limits
        self.on_refused = on_refused
        self.refusals = 0
        self._lock = threading.Lock()
        self._pending: Counter[str] = Counter()
        self._recent: dict[str, deque[float]] = {}
        self._alerted: dict[str, float] = {}

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(self._pending.values())

    def enter(self, address: str) -> bool:
        """Take a place in the pool for a new connection from ``address``; False (and the refusal
        reported) when the pool or the address's share of it is full."""
        with self._lock:
            if self._pending[address] >= self.limits.pending_per_address:
                reason = "too many connections from this address awaiting their association request"
            elif sum(self._pending.values()) >= self.limits.pending_total:
                reason = "too many connections awaiting their association request"
            else:
                self._pending[address] += 1
                return True
        self.refuse(address, reason)
        return False

    def leave(self, address: str) -> None:
        with self._lock:
            self._pending[address] -= 1
            if self._pending[address] <= 0:
                del self._pending[address]

    def refuse(self, address: str, reason: str) -> None:
        """Count a refused or timed-out connection and report it."""
        now = time.monotonic()
        window = self.limits.alert_window_seconds
        with self._lock:
            self.refusals += 1
            recent = self._recent.setdefault(address, deque())
            recent.append(now)
            while recent and now - recent[0] > window:
                recent.popleft()
            quiet_since_alert = now - self._alerted.get(address, -window) >= window
            repeated = len(recent) >= self.limits.alert_after and quiet_since_alert
            if repeated:
                self._alerted[address] = now
            if len(self._recent) > 4096:  # forget quiet addresses: bounded memory under a scan
                for quiet in [a for a, t in self._recent.items() if not t or now - t[-1] > window]:
                    del self._recent[quiet]
        self.on_refused(address, reason, repeated)

    def at_once(self, connection: socket.socket) -> tuple[bool, str | None]:
        """Judge the connection on what it has sent already, without waiting: (judged, refusal).
        A sender's whole request is usually there as its connection is accepted: it needs no place
        in the pool, so a burst of associations from one sender is not held to its address's share."""
        try:
            sent = connection.recv(
                _HEADER.size + self.limits.max_request_bytes, socket.MSG_PEEK | socket.MSG_DONTWAIT
            )
        except BlockingIOError:
            return False, None
        except OSError as exc:
            return True, f"connection failed before its association request ({type(exc).__name__})"
        if not sent:
            return True, "closed before its association request"
        return self._judge(sent)

    def screen(self, connection: socket.socket) -> str | None:
        """Wait for the connection's whole A-ASSOCIATE-RQ, leaving it unread; None when it is all
        there, else why the connection is refused."""
        deadline = time.monotonic() + self.limits.request_deadline_seconds
        needed = _HEADER.size
        try:
            while True:
                sent = _peek(connection, needed, deadline)
                if sent is None:
                    return "no association request before the deadline"
                if len(sent) < needed:
                    return "closed before its association request was whole"
                judged, refusal = self._judge(sent)
                if judged:
                    return refusal
                needed = _HEADER.size + _HEADER.unpack_from(sent)[2]
        except OSError as exc:
            return f"connection failed before its association request ({type(exc).__name__})"
        finally:
            try:
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
            except OSError:
                pass

    def _judge(self, sent: bytes) -> tuple[bool, str | None]:
        """(judged, refusal) on the first bytes a peer sent: not judged until its header, or its
        whole A-ASSOCIATE-RQ, is there; then refused or not."""
        if len(sent) < _HEADER.size:
            return False, None
        pdu_type, _, length = _HEADER.unpack_from(sent)
        if pdu_type != ASSOCIATE_RQ:
            return True, f"first PDU of type 0x{pdu_type:02X}, not an A-ASSOCIATE-RQ"
        if length > self.limits.max_request_bytes:
            return (
                True,
                f"A-ASSOCIATE-RQ of {length} bytes exceeds the limit of {self.limits.max_request_bytes}",
            )
        if len(sent) < _HEADER.size + length:
            return False, None
        titles = sent[_AE_TITLES]
        if len(titles) < 32 or not all(0x20 <= byte <= 0x7E for byte in titles):
            return True, "an AE title in the association request is not printable ASCII"
        return True, None


def _peek(connection: socket.socket, count: int, deadline: float) -> bytes | None:
    """The first ``count`` bytes the peer sent, left in the socket; fewer if it closed first;
    None at the deadline. The kernel wakes this thread only once ``count`` bytes are there or the
    peer has closed (``SO_RCVLOWAT``), so a peer trickling bytes costs no polling."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, count)
    left = deadline - time.monotonic()
    if left <= 0:
        return None
    readable, _, _ = select.select([connection], [], [], left)
    if not readable:
        return None
    return connection.recv(count, socket.MSG_PEEK)
