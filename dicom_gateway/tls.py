"""DICOM TLS (PS3.15 Annex B, BCP 195): contexts, the reasons a handshake is refused, and the
names in a peer's certificate. The handshake itself is done per connection by
:class:`dicom_gateway.server.GatewayServer`, which reports every refusal.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

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
