"""The storage SCU: C-ECHO and C-STORE to a remote AE (a PACS), over TLS where configured."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from dicom_gateway.errors import SendError

_MAX_CONTEXTS = 128
# Success and the C-STORE warnings (coercion, elements discarded, dataset mismatch).
_STORED = {0x0000, 0xB000, 0xB006, 0xB007}


@dataclass(frozen=True)
class RemoteAE:
    ae_title: str
    host: str
    port: int
    tls_context: ssl.SSLContext | None = None


@dataclass(frozen=True)
class OutgoingInstance:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    part10: bytes


def _associate(ae: AE, remote: RemoteAE):  # type: ignore[no-untyped-def]
    tls_args = (remote.tls_context, remote.host) if remote.tls_context else None
    assoc = ae.associate(remote.host, remote.port, ae_title=remote.ae_title, tls_args=tls_args)
    if not assoc.is_established:
        state = (
            "rejected"
            if assoc.is_rejected
            else _unreachable(remote) or ("aborted" if assoc.is_aborted else "failed")
        )
        raise SendError(f"association with {remote.ae_title}@{remote.host}:{remote.port} {state}")
    return assoc


def _unreachable(remote: RemoteAE) -> str | None:
    """Why no association could start, when the cause is the connection itself (pynetdicom reports
    a refused or unroutable connection only as an aborted association)."""
    try:
        with socket.create_connection((remote.host, remote.port), timeout=5):
            return None
    except OSError as exc:
        return f"failed: cannot connect ({exc.strerror or type(exc).__name__})"


def echo(remote: RemoteAE, calling_ae: str, timeout: float = 30.0) -> None:
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(Verification)
    assoc = _associate(ae, remote)
    try:
        result = assoc.send_c_echo()
    finally:
        assoc.release()
    code = getattr(result, "Status", None)
    if code != 0x0000:
        raise SendError(f"C-ECHO to {remote.ae_title} answered status {code}")


def store(
    remote: RemoteAE, calling_ae: str, instances: Sequence[OutgoingInstance], timeout: float = 60.0
) -> None:
    """C-STORE every instance in one association; raise SendError naming those not stored."""
    pairs = sorted({(i.sop_class_uid, i.transfer_syntax_uid) for i in instances})
    if len(pairs) > _MAX_CONTEXTS:
        raise SendError(f"{len(pairs)} SOP class / transfer syntax pairs exceed one association")
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    for sop_class, syntax in pairs:
        ae.add_requested_context(
            sop_class, list(dict.fromkeys([syntax, ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
        )
    assoc = _associate(ae, remote)
    failed: list[str] = []
    attempted = 0
    try:
        for instance in instances:
            if not assoc.is_established:
                break
            attempted += 1
            result = assoc.send_c_store(dcmread(BytesIO(instance.part10)))
            code = getattr(result, "Status", None)
            if code not in _STORED:
                failed.append(f"{instance.sop_instance_uid} (status {code})")
    finally:
        if assoc.is_established:
            assoc.release()
    failed.extend(f"{i.sop_instance_uid} (not sent)" for i in instances[attempted:])
    if failed:
        raise SendError(f"{len(failed)} of {len(instances)} not stored: {', '.join(failed[:5])}")
