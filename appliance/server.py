"""``appliance serve``: the gateway, the workers and the HTTP server in one process."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading

import uvicorn

from appliance.assembly import Assembler
from appliance.context import Appliance
from appliance.errors import ConfigError
from appliance.http_api import create_app
from appliance.ingest import InstanceIndex
from appliance.peers import DatabaseSourcePolicy
from appliance.reconcile import reconcile
from appliance.sending import SendWorker, release_interrupted
from audit.events import Action, AuditEvent, EventID, Outcome, Participant
from dicom_gateway import tls
from dicom_gateway.scp import GatewayConfig, StorageSCP

log = logging.getLogger(__name__)


def _gateway_config(app: Appliance, dicom_port: int) -> GatewayConfig:
    dicom = app.settings.dicom
    context = None
    if dicom.tls.enabled:
        if not (dicom.tls.cert_file and dicom.tls.key_file):
            raise ConfigError("dicom.tls.enabled needs dicom.tls.cert_file and dicom.tls.key_file")
        context = tls.server_context(
            app.settings.path(dicom.tls.cert_file),
            app.settings.path(dicom.tls.key_file),
            app.settings.path(dicom.tls.ca_file) if dicom.tls.ca_file else None,
            dicom.tls.require_client_cert,
        )
    return GatewayConfig(
        ae_title=dicom.ae_title,
        host=dicom.host,
        port=dicom_port,
        max_associations=dicom.max_associations,
        max_instance_bytes=dicom.max_instance_bytes,
        min_free_bytes=dicom.min_free_bytes,
        free_space_path=app.store.root,
        network_timeout=dicom.network_timeout_seconds,
        max_pdu=dicom.max_pdu,
        tls_context=context,
        handshake_timeout=dicom.tls.handshake_timeout_seconds,
    )


def _lifecycle_event(app: Appliance, type_code: str) -> None:
    app.audit.emit(
        AuditEvent(
            event_id=EventID.APPLICATION_ACTIVITY,
            action=Action.EXECUTE,
            outcome=Outcome.SUCCESS,
            type_code=type_code,
            participants=(Participant(app.settings.dicom.ae_title, role="Application"),),
        )
    )


def serve(app: Appliance, dicom_port: int | None = None, http_port: int | None = None) -> None:
    settings = app.settings
    report = reconcile(app)
    released = release_interrupted(app)
    if released:
        log.info("%d interrupted send jobs back in the queue", released)
    log.info(
        "reconciled store: %d quarantined, %d missing",
        len(report.orphans_quarantined),
        len(report.missing_files),
    )
    index = InstanceIndex(app)
    scp = StorageSCP(
        _gateway_config(app, dicom_port if dicom_port is not None else settings.dicom.port),
        DatabaseSourcePolicy(app, settings.dicom.tls.require_client_cert),
        index,
        app.audit,
    )
    assembler = Assembler(app)
    sender = SendWorker(app)
    http = uvicorn.Server(
        uvicorn.Config(
            create_app(app, lambda: scp.running, lambda: scp.security_events),
            host=settings.http.host,
            port=http_port if http_port is not None else settings.http.port,
            log_level="warning",
            log_config=None,
        )
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    port = scp.start()
    assembler.start()
    sender.start()
    http_thread = threading.Thread(target=lambda: asyncio.run(http.serve()), name="http", daemon=True)
    http_thread.start()
    _lifecycle_event(app, "Application Start")
    log.info("serving DICOM as %s on port %d, HTTP on port %d", settings.dicom.ae_title, port, http.config.port)
    stop.wait()

    log.info("stopping")
    scp.stop()
    http.should_exit = True
    assembler.stop()
    sender.stop()
    index.close()
    http_thread.join(timeout=10)
    _lifecycle_event(app, "Application Stop")
