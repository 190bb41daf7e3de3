"""``appliance serve``: the gateway, the workers and the HTTP server in one process."""

from __future__ import annotations

import gc
import importlib.metadata
import ipaddress
import logging
import signal
import socket
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import uvicorn

from appliance.compliance import reports as compliance_reports
from appliance.config import CONFIG_FILE, Settings
from appliance.context import Appliance
from appliance.errors import ConfigError
from appliance.jobs.payloads import SendInstances, SeriesComplete
from appliance.jobs.queue import JobQueue
from appliance.pipeline.assembly import series_assembler
from appliance.pipeline.gateway import GATEWAY_TRIM_ABOVE, GatewayProcesses
from appliance.pipeline.sending import send_worker
from appliance.runtime import heap
from appliance.runtime.periodic import Periodic
from appliance.runtime.run_marker import UncleanStop, start_run, stop_run
from appliance.storage.reconcile import reconcile
from appliance.web.app import create_app
from audit.events import Action, AuditEvent, EventID, Outcome, Participant
from audit.syslog import Receiver, SyslogForwarder
from dicom_gateway import tls

_COMPLIANCE_POLL_SECONDS = 3600.0  # the schedule looks again at least this often

if TYPE_CHECKING:
    from appliance.pipeline.inference.runner import InferenceRunner

log = logging.getLogger(__name__)


def _lifecycle_event(app: Appliance, type_code: str, unclean: UncleanStop | None = None) -> None:
    app.audit.emit(
        AuditEvent(
            event_id=EventID.APPLICATION_ACTIVITY,
            action=Action.EXECUTE,
            outcome=Outcome.SUCCESS if unclean is None else Outcome.MINOR_FAILURE,
            type_code=type_code,
            participants=(Participant(app.settings.dicom.ae_title, role="Application"),),
            description=unclean.describe() if unclean else "",
        )
    )


def _http_port_free(host: str, port: int) -> None:
    """Refuse to start, in one line, when the HTTP port is taken (uvicorn would only log it)."""
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            f"the HTTP port {port} cannot be opened ({exc.strerror}); another program may be listening "
            "there: choose another with --http-port or http.port"
        ) from None
    finally:
        probe.close()


def _start_gateway(gateway: GatewayProcesses) -> int:
    try:
        return gateway.start()
    except OSError as exc:
        gateway.stop()
        raise ConfigError(
            f"the DICOM port {gateway.port} cannot be opened ({exc.strerror}); another program may be "
            "listening there: choose another with --dicom-port or dicom.port"
        ) from None


def _syslog_forwarder(app: Appliance) -> Periodic | None:
    settings = app.settings
    syslog = settings.audit.syslog
    if not syslog.enabled:
        return None
    optional = lambda path: settings.path(path) if path else None  # noqa: E731
    receiver = Receiver(
        syslog.host,
        syslog.port,
        tls.client_context(optional(syslog.ca_file), optional(syslog.cert_file), optional(syslog.key_file)),
    )
    directory = settings.path(settings.audit.directory)
    forwarder = SyslogForwarder(
        directory,
        app.audit_key,
        directory / "syslog-cursor.json",
        receiver,
        "imaging-appliance",
        settings.audit.origin,
    )
    return Periodic("syslog", syslog.poll_seconds, forwarder.pump)


def _inference_runner(app: Appliance, on_results: Callable[[], None]) -> InferenceRunner | None:
    if not app.settings.inference.enabled:
        return None
    from appliance.pipeline.inference.runner import InferenceRunner  # imports torch

    released = JobQueue(app, SeriesComplete).release_this_host()
    if released:
        log.info("%d interrupted inference jobs back in the queue", released)
    return InferenceRunner(app, on_results)


def _http_tls(settings: Settings) -> dict[str, str]:
    """uvicorn's TLS settings; plain HTTP only on loopback, unless allowed (behind a TLS proxy)."""
    http = settings.http
    if http.tls_certificate and http.tls_private_key:
        return {
            "ssl_certfile": str(settings.path(http.tls_certificate)),
            "ssl_keyfile": str(settings.path(http.tls_private_key)),
        }
    if http.tls_certificate or http.tls_private_key:
        raise ConfigError("http.tls_certificate and http.tls_private_key go together: set both or neither")
    try:
        loopback = ipaddress.ip_address(http.host).is_loopback
    except ValueError:
        loopback = http.host == "localhost"
    if not loopback and not http.allow_plain_http:
        raise ConfigError(
            f"HTTP on {http.host} without TLS would carry passwords and PHI in the clear: set "
            "http.tls_certificate and http.tls_private_key, or http.allow_plain_http behind a TLS proxy"
        )
    return {}


def serve(app: Appliance, dicom_port: int | None = None, http_port: int | None = None) -> None:
    settings = app.settings
    log.info(
        "appliance %s starting: home %s, configuration %s",
        importlib.metadata.version("imaging-appliance"), settings.home, settings.home / CONFIG_FILE,
    )  # fmt: skip
    http_tls = _http_tls(settings)  # before anything runs: a refusal here is not an unclean stop
    heap.keep_freed_memory(trim_above=GATEWAY_TRIM_ABOVE)  # this process's gateway receives too
    audit_directory = settings.path(settings.audit.directory)
    unclean = start_run(audit_directory)
    if unclean is not None:
        log.warning("%s", unclean.describe())
    report = reconcile(app)
    released = JobQueue(app, SendInstances).release_this_host()
    if released:
        log.info("%d interrupted send jobs back in the queue", released)
    log.info(
        "reconciled store: %d quarantined, %d missing",
        len(report.orphans_quarantined),
        len(report.missing_files),
    )
    gateway = GatewayProcesses(app, dicom_port if dicom_port is not None else settings.dicom.port)
    sender = send_worker(app)
    runner = _inference_runner(app, on_results=sender.wake)
    assembler = series_assembler(app, on_complete=runner.wake if runner else None)
    syslog = _syslog_forwarder(app)
    compliance = Periodic("compliance", _COMPLIANCE_POLL_SECONDS, partial(compliance_reports.scheduled, app))
    http = uvicorn.Server(
        uvicorn.Config(
            create_app(app, lambda: gateway.running, gateway.capacity),
            host=settings.http.host,
            port=http_port if http_port is not None else settings.http.port,
            log_level="warning",
            log_config=None,
            **http_tls,
        )
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    try:
        _http_port_free(settings.http.host, http.config.port)
        port = _start_gateway(gateway)
    except ConfigError:
        stop_run(audit_directory)  # nothing ran: not an unclean stop
        raise
    assembler.start()
    sender.start()
    if runner:
        runner.start()
    if syslog:
        syslog.start()
    compliance.start()
    http_thread = threading.Thread(target=http.run, name="http", daemon=True)  # uvloop where installed
    http_thread.start()
    _lifecycle_event(app, "Application Start", unclean)
    # Everything made so far (the imported libraries: torch's, pydantic's, SQLAlchemy's objects)
    # lives as long as the process: out of the collector's sight, a full collection walks only
    # what came after. Without this each one took 0.37-0.58 s of CPU, holding the GIL in this
    # process and a core from the inference process's network (measured during series).
    gc.freeze()
    log.info(
        "serving DICOM as %s on port %d (%d processes), HTTP on port %d",
        settings.dicom.ae_title,
        port,
        gateway.count,
        http.config.port,
    )
    while not stop.wait(1.0):
        gateway.supervise()

    log.info("stopping")
    gateway.stop()
    http.should_exit = True
    assembler.stop()
    if runner:
        runner.stop()
    sender.stop()
    if syslog:
        syslog.stop()
    compliance.stop()
    http_thread.join(timeout=10)
    _lifecycle_event(app, "Application Stop")
    app.close()  # the audit log written, checkpointed and its clean stop recorded: then the marker goes
    stop_run(audit_directory)
