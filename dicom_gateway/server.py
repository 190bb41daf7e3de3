"""The gateway's TCP server: connections screened before authentication, TLS handshakes done per
connection with their refusals reported, connections handed to other processes, and each served
on a thread of its own.

In the accepting process a plain connection waits in the ``admission`` pool until its whole
A-ASSOCIATE-RQ is there (:mod:`dicom_gateway.admission`); a TLS connection's request is only
readable after its handshake, so it goes straight on. A ``handoff`` callable may pass a connection
to another process (see the appliance's gateway), which serves it with :meth:`GatewayServer.dispatch`.
Where it is served, the whole A-ASSOCIATE-RQ (after the handshake, for TLS) must arrive within the
admission deadline from the start of serving.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from dicom_gateway.admission import Admission
from dicom_gateway.pdu import remaining
from dicom_gateway.tls import describe_handshake_failure

log = logging.getLogger(__name__)

HandshakeRefused = Callable[[tuple[str, int], str], None]
# Given an accepted connection, hand it to another process (True) or keep it here (False).
Handoff = Callable[[socket.socket, tuple[str, int]], bool]
# Serve one connection until it ends, its A-ASSOCIATE-RQ due by the deadline (time.monotonic).
Serve = Callable[[socket.socket, tuple[str, int], float], None]


class GatewayServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        serve: Serve,
        *,
        tls_context: ssl.SSLContext | None,
        on_refused: HandshakeRefused,
        handshake_timeout: float,
        admission: Admission,
        handoff: Handoff | None = None,
        listen: bool = True,
    ) -> None:
        self.serve = serve
        self.tls_context = tls_context
        self.on_refused = on_refused
        self.handshake_timeout = handshake_timeout
        self.admission = admission
        self.handoff = handoff
        self.listening = False  # True once serve_forever is started (not for a server fed by handoff)
        self._lock = threading.Lock()
        self._served: set[Any] = set()
        super().__init__(address, socketserver.BaseRequestHandler, bind_and_activate=listen)

    def shutdown(self) -> None:
        """Stop accepting, and cut every connection being served."""
        if self.listening:
            super().shutdown()
        self.server_close()
        with self._lock:
            served = list(self._served)
        for connection in served:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

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
        """Serve one connection on this thread (ThreadingMixIn's own for each connection)."""
        deadline = time.monotonic() + self.admission.limits.request_deadline_seconds
        connection = request
        self._track(connection, True)
        try:
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls_context is not None:
                wrapped = self._handshake(connection, client_address, deadline)
                if wrapped is None:
                    return
                self._track(connection, False)
                connection = wrapped
                self._track(connection, True)
            self.serve(connection, client_address, deadline)
        except Exception as exc:  # serve never raises on purpose; keep the server up if it does
            log.error("connection from %s failed (%s)", client_address[0], type(exc).__name__)
        finally:
            self._track(connection, False)
            self.shutdown_request(connection)

    def _handshake(self, request: socket.socket, client_address: tuple[str, int], deadline: float) -> Any:
        """The TLS connection, or None (the refusal reported) when its handshake fails."""
        try:
            request.settimeout(min(self.handshake_timeout, remaining(deadline)))
            assert self.tls_context is not None
            return self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            reason = describe_handshake_failure(exc)
            log.warning("TLS handshake refused from %s: %s", client_address[0], reason)
            self.on_refused(client_address, reason)
            return None

    def _track(self, connection: Any, served: bool) -> None:
        with self._lock:
            if served:
                self._served.add(connection)
            else:
                self._served.discard(connection)
