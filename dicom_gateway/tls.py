"""DICOM TLS (PS3.15 Annex B, BCP 195): contexts, and a server that audits refused handshakes.

pynetdicom wraps accepted sockets in its accept loop and drops a failed handshake silently (and a
slow handshake there blocks every other caller). :class:`HandshakeAuditingServer` accepts plain
sockets and does the handshake in the connection's own thread, with a timeout, reporting every
refusal (no certificate, untrusted CA, plain TCP, old protocol) to a callback.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer

from dicom_gateway.admission import Admission
from dicom_gateway.framing import FramedSocket, PduFraming, framed_tls, set_framing

log = logging.getLogger(__name__)

# BCP 195 (RFC 9325) recommended suites for TLS 1.2; TLS 1.3 suites are OpenSSL's defaults.
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"


def server_context(
    cert_file: Path, key_file: Path, ca_file: Path | None, require_client_cert: bool
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(_TLS12_CIPHERS)
    context.load_cert_chain(cert_file, key_file)
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


def client_context(
    ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(_TLS12_CIPHERS)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


def describe_handshake_failure(exc: BaseException) -> str:
    """A short, stable reason for a refused handshake (no peer data in it)."""
    reason = (getattr(exc, "reason", None) or type(exc).__name__).upper()
    if "PEER_DID_NOT_RETURN_A_CERTIFICATE" in reason:
        return "no client certificate"
    if "CERTIFICATE_VERIFY_FAILED" in reason or "UNKNOWN_CA" in reason:
        return "client certificate not trusted"
    if "UNSUPPORTED_PROTOCOL" in reason or "PROTOCOL_VERSION" in reason or "NO_PROTOCOLS" in reason:
        return "protocol version not allowed (TLS 1.2 or newer required)"
    if "WRONG_VERSION_NUMBER" in reason or "HTTP_REQUEST" in reason or "RECORD_LAYER" in reason:
        return "not a TLS handshake (plain TCP on a TLS port)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "handshake timed out"
    if "EOF" in reason or isinstance(exc, ConnectionError):
        return "connection closed during handshake"
    return f"handshake failed ({reason.lower()})"


HandshakeRefused = Callable[[tuple[str, int], str], None]
# Given an accepted connection, hand it to another process (True) or keep it here (False).
Handoff = Callable[[socket.socket, tuple[str, int]], bool]


class HandshakeAuditingServer(ThreadedAssociationServer):
    """An association server whose connections are screened before authentication, whose TLS
    handshakes happen per connection, and whose PDUs are checked on their headers.

    In the accepting process a plain connection waits in the ``admission`` pool until its whole
    A-ASSOCIATE-RQ is there (:mod:`dicom_gateway.admission`). A ``handoff`` callable may then pass
    it to another process (see the appliance's gateway), which serves it with :meth:`dispatch`.
    Where it is served, every connection (TLS ones included) must have its whole A-ASSOCIATE-RQ
    read within the admission deadline from the start, and its PDUs are framed
    (:mod:`dicom_gateway.framing`). It is made with ``AE.make_server``, not ``AE.start_server``,
    so it is not in the AE's list of servers; ``shutdown`` therefore stops it directly.
    """

    def __init__(
        self,
        *args: Any,
        tls_context: ssl.SSLContext | None,
        on_refused: HandshakeRefused,
        handshake_timeout: float,
        admission: Admission,
        handoff: Handoff | None = None,
        **kwargs: Any,
    ) -> None:
        self.handoff = handoff
        self.tls_context = framed_tls(tls_context) if tls_context is not None else None
        self.on_refused = on_refused
        self.handshake_timeout = handshake_timeout
        self.admission = admission
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        return self.socket.accept()

    def shutdown(self) -> None:
        if self.listening:
            socketserver.TCPServer.shutdown(self)
        self.server_close()
        for assoc in self.active_associations:
            assoc.abort()

    listening = False  # True once serve_forever is started (not for a server fed by handoff)

    def process_request(self, request: Any, client_address: Any) -> None:
        """An accepted connection: screened first when it is plain TCP (TLS hides the request)."""
        if self.tls_context is not None:
            self.dispatch(request, client_address)
            return
        judged, refusal = self.admission.at_once(request)
        if judged:
            if refusal is None:
                self.dispatch(request, client_address)
            else:
                self.admission.refuse(client_address[0], refusal)
                self.shutdown_request(request)
            return
        if not self.admission.enter(client_address[0]):
            self.shutdown_request(request)
            return
        threading.Thread(
            target=self._screen, args=(request, client_address), name="dicom-screen", daemon=True
        ).start()

    def _screen(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        try:
            refusal = self.admission.screen(request)
        finally:
            self.admission.leave(client_address[0])
        if refusal is not None:
            self.admission.refuse(client_address[0], refusal)
            self.shutdown_request(request)
            return
        self.dispatch(request, client_address)

    def dispatch(self, request: Any, client_address: Any) -> None:
        """Serve the connection in this process, or hand it to another."""
        if self.handoff is not None and self.handoff(request, client_address):
            request.close()  # another process serves it now; drop only our copy of the fd
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve one connection (pynetdicom runs the association in a thread of its own)."""
        host = client_address[0]
        served = [request]  # the socket object in use: wrapping detaches the one before
        framing = PduFraming(
            self.admission.limits.max_request_bytes,
            self.ae.maximum_pdu_size,
            on_request_read=lambda: deadline.cancel(),
            on_refused=lambda reason: self.admission.refuse(host, reason),
        )
        deadline = threading.Timer(
            self.admission.limits.request_deadline_seconds, self._deadline, (served, framing, host)
        )
        deadline.daemon = True
        deadline.start()
        if self.tls_context is not None:
            try:
                request.settimeout(self.handshake_timeout)
                request = self.tls_context.wrap_socket(request, server_side=True)
                request.settimeout(self.ae.network_timeout)
            except (ssl.SSLError, OSError) as exc:
                deadline.cancel()
                reason = describe_handshake_failure(exc)
                log.warning("TLS handshake refused from %s: %s", host, reason)
                self.on_refused(client_address, reason)
                self.shutdown_request(request)
                return
            set_framing(request, framing)
        else:
            request = FramedSocket.adopt(request, framing)
        served[0] = request
        super().process_request_thread(request, client_address)

    def _deadline(self, served: list[socket.socket], framing: PduFraming, host: str) -> None:
        """The whole A-ASSOCIATE-RQ is not read in time: cut the connection (however it trickles)."""
        if framing.request_read:
            return
        try:
            served[0].shutdown(socket.SHUT_RDWR)
        except OSError:
            return  # already closed
        self.admission.refuse(host, "no association request before the deadline")


def certificate_names(sock: Any) -> tuple[str | None, str | None]:
    """(subject as 'CN=..,O=..', common name) of the peer's verified certificate, if any."""
    getpeercert = getattr(sock, "getpeercert", None)
    certificate = getpeercert() if getpeercert else None
    if not certificate:
        return None, None
    parts = [(k, v) for rdn in certificate.get("subject", ()) for (k, v) in rdn]
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C"}
    subject = ",".join(f"{short.get(k, k)}={v}" for k, v in parts)
    common_name = next((v for k, v in parts if k == "commonName"), None)
    return subject, common_name
