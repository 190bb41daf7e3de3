"""The DICOM gateway as the appliance runs it: one storage SCP per process.

Each association is served on a thread of its own (:mod:`dicom_gateway.association`), so one
process is bound by the GIL. ``serve`` runs the listening SCP in the main process and
``dicom.workers - 1`` worker processes; the main process accepts each connection and hands it (its
file descriptor, over a Unix socket) to the process with the fewest open associations, itself
included. All share the security-event counter and the association limit through shared memory,
write the same database and store, and the workers die with the main process.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.admin.peers import DatabaseSourcePolicy
from appliance.context import Appliance, open_appliance
from appliance.errors import ConfigError
from appliance.runtime import heap, logs
from appliance.runtime.child_process import die_with_parent, parent_alive
from appliance.storage.writer import ObjectWriter
from dicom_gateway import tls
from dicom_gateway.admission import AdmissionLimits
from dicom_gateway.limits import AssociationGate, GatewayCapacity, SharedCounter, StoreOutcomes
from dicom_gateway.scp import GatewayConfig, StorageSCP
from dicom_gateway.server import Handoff

log = logging.getLogger(__name__)

_MAX_DEFAULT_WORKERS = 4
GATEWAY_TRIM_ABOVE = 64 * 2**20  # a worker's heap keeps up to this much free memory for the next instances


def worker_count(app: Appliance) -> int:
    configured = app.settings.dicom.workers
    return configured or min(os.cpu_count() or 1, _MAX_DEFAULT_WORKERS)


def gateway_config(app: Appliance, port: int) -> GatewayConfig:
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
        port=port,
        max_associations=dicom.max_associations,
        max_instance_bytes=dicom.max_instance_bytes,
        min_free_bytes=dicom.min_free_bytes,
        free_space_path=app.store.root,
        network_timeout=dicom.network_timeout_seconds,
        max_pdu=dicom.max_pdu,
        tls_context=context,
        handshake_timeout=dicom.tls.handshake_timeout_seconds,
        admission=AdmissionLimits(**dicom.admission.model_dump()),
    )


def _scp(
    app: Appliance,
    index: ObjectWriter,
    port: int,
    shared: _Shared,
    connections: SharedCounter | None,
    handoff: Handoff | None = None,
) -> StorageSCP:
    return StorageSCP(
        gateway_config(app, port),
        DatabaseSourcePolicy(app, app.settings.dicom.tls.require_client_cert),
        index,
        app.audit,
        security_events=SharedCounter(shared.security),
        gate=AssociationGate(shared.limit, SharedCounter(shared.active)),
        connections=connections,
        handoff=handoff,
        refused_connections=SharedCounter(shared.refused),
        outcomes=StoreOutcomes(shared.outcomes),
    )


@dataclass(frozen=True)
class _Shared:
    """What every gateway process shares (picklable for the worker's start)."""

    security: Any
    active: Any
    refused: Any
    limit: int
    outcomes: Any


def _receive_connections(channel: socket.socket, scp: StorageSCP, closed: threading.Event) -> None:
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(channel, 512, 1)
        except OSError:
            break
        if not message or not fds:
            break
        host, port = json.loads(message)
        scp.adopt(socket.socket(fileno=fds[0]), (host, port))
    closed.set()


def _worker_main(
    home: str, channel: socket.socket, shared: _Shared, load: Any, ready: Any, parent: int
) -> None:
    die_with_parent()
    if not parent_alive(parent):
        return
    heap.keep_freed_memory(trim_above=GATEWAY_TRIM_ABOVE)
    app = open_appliance(Path(home), migrate_schema=False)  # the main process migrated it
    logs.configure(app.settings.log_path, app.settings.log_level)
    index = ObjectWriter(app)
    scp = _scp(app, index, 0, shared, SharedCounter(load))
    scp.start_detached()
    SharedCounter(ready).add()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    threading.Thread(target=_receive_connections, args=(channel, scp, stop), daemon=True).start()
    stop.wait()
    scp.stop()
    index.close()
    app.close()


@dataclass
class _Worker:
    process: Any
    channel: socket.socket
    load: SharedCounter
    ready: SharedCounter

    @property
    def serving(self) -> bool:
        return self.ready.value > 0 and self.process.is_alive()


class GatewayProcesses:
    """The main process's SCP, which accepts, and the worker processes it hands connections to."""

    def __init__(self, app: Appliance, port: int) -> None:
        self.app = app
        self.port = port
        self.count = worker_count(app)
        self.security = SharedCounter()
        self._shared = _Shared(
            self.security.shared,
            SharedCounter().shared,
            SharedCounter().shared,
            app.settings.dicom.max_associations,
            StoreOutcomes().shared,
        )
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._rotation = itertools.count()
        self._local_load = SharedCounter()
        self._index = ObjectWriter(app)
        handoff = self._handoff if self.count > 1 else None
        self.scp = _scp(app, self._index, port, self._shared, self._local_load if handoff else None, handoff)

    def start(self) -> int:
        port = self.scp.start()
        self._workers = [self._spawn() for _ in range(self.count - 1)]
        return port

    def _spawn(self) -> _Worker:
        main_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        load, ready = SharedCounter(), SharedCounter()
        process = self._context.Process(
            target=_worker_main,
            args=(
                str(self.app.settings.home),
                worker_end,
                self._shared,
                load.shared,
                ready.shared,
                os.getpid(),
            ),
            name="dicom-worker",
        )
        process.start()
        worker_end.close()
        return _Worker(process, main_end, load, ready)

    def _handoff(self, connection: socket.socket, address: tuple[str, int]) -> bool:
        """Give the connection to the process with fewest open connections (rotating among equals).

        The count is raised here, at assignment, so a burst of connections spreads evenly even
        before the chosen processes have seen theirs; each process lowers it on close.
        """
        candidates: list[_Worker | None] = [None, *[w for w in self._workers if w.serving]]
        start = next(self._rotation) % len(candidates)
        ordered = candidates[start:] + candidates[:start]
        choice = min(ordered, key=lambda w: self._local_load.value if w is None else w.load.value)
        if choice is not None:
            choice.load.add()
            try:
                socket.send_fds(choice.channel, [json.dumps(address[:2]).encode()], [connection.fileno()])
                return True
            except OSError:
                choice.load.add(-1)
                log.error("could not hand a connection to worker %s; serving it here", choice.process.pid)
        self._local_load.add()
        return False

    def supervise(self) -> None:
        """Restart any worker that died (called periodically by the main loop)."""
        for position, worker in enumerate(self._workers):
            if not worker.process.is_alive():
                log.error(
                    "gateway worker %s exited with %s; restarting it",
                    worker.process.pid,
                    worker.process.exitcode,
                )
                worker.channel.close()
                self._workers[position] = self._spawn()

    @property
    def loads(self) -> list[int]:
        """Open connections per process, the main process first."""
        return [self._local_load.value, *[w.load.value for w in self._workers]]

    def capacity(self) -> GatewayCapacity:
        """The whole gateway's (connections await their request only in this, the accepting, process)."""
        stored, refused = StoreOutcomes(self._shared.outcomes).counts()
        return GatewayCapacity(
            associations=SharedCounter(self._shared.active).value,
            association_limit=self._shared.limit,
            awaiting_request=self.scp.admission.pending,
            awaiting_limit=self.scp.admission.limits.pending_total,
            refused_connections=SharedCounter(self._shared.refused).value,
            security_events=self.security.value,
            stored=stored,
            refused=refused,
        )

    @property
    def running(self) -> bool:
        return self.scp.running and all(w.serving for w in self._workers)

    def stop(self) -> None:
        self.scp.stop()
        for worker in self._workers:
            worker.process.terminate()
        for worker in self._workers:
            worker.process.join(timeout=30)
            worker.channel.close()
        self._index.close()
