"""Prometheus metrics at ``/metrics`` (admins), read from the database and the gateway at each scrape,
so that every process's work is counted (the gateway, the inference and the sending processes
each write to the database, not to this process's memory)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import select

from appliance.access import accounts
from appliance.context import Appliance
from appliance.db.tables import Instance, Job, JobKind, JobState, as_utc
from appliance.web.api.deps import CurrentCaller
from dicom_gateway.limits import GatewayCapacity


class _ApplianceCollector(Collector):
    def __init__(self, app: Appliance, capacity: Callable[[], GatewayCapacity]) -> None:
        self.app, self.capacity = app, capacity

    def _inference_latency(self) -> HistogramMetricFamily:
        """From a series complete to its results (queue wait included), over the finished jobs."""
        with self.app.session() as session:
            rows = session.exec(
                select(Job.created_at, Job.updated_at).where(
                    Job.kind == JobKind.SERIES_COMPLETE, Job.state == JobState.DONE
                )
            ).all()
        seconds = [(as_utc(done) - as_utc(made)).total_seconds() for made, done in rows]
        buckets, total = _histogram(seconds)
        family = HistogramMetricFamily(
            "appliance_inference_seconds", "from a complete series to its results, per finished job"
        )
        family.add_metric([], buckets, total)
        return family

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        with self.app.session() as session:
            count, size = session.exec(select(func.count(), func.coalesce(func.sum(Instance.size), 0))).one()
            jobs = session.exec(select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)).all()
        stored = CounterMetricFamily("appliance_instances_stored", "instances held in the encrypted store")
        stored.add_metric([], count)
        yield stored
        store_bytes = GaugeMetricFamily(
            "appliance_store_bytes", "bytes of instances in the store (plaintext size)"
        )
        store_bytes.add_metric([], size)
        yield store_bytes
        depth = GaugeMetricFamily("appliance_jobs", "jobs by kind and state", labels=["kind", "state"])
        failures = CounterMetricFamily("appliance_jobs_failed", "jobs that failed for good", labels=["kind"])
        for kind, state, n in jobs:
            depth.add_metric([kind.value, state.value], n)
            if state is JobState.FAILED:
                failures.add_metric([kind.value], n)
        yield depth
        yield failures
        yield self._inference_latency()
        gateway = self.capacity()
        associations = GaugeMetricFamily("appliance_dicom_associations", "DICOM associations open now")
        associations.add_metric([], gateway.associations)
        yield associations
        received = CounterMetricFamily(
            "appliance_dicom_instances_received", "C-STOREs stored since the start"
        )
        received.add_metric([], gateway.stored)
        yield received
        rejected = CounterMetricFamily(
            "appliance_dicom_instances_rejected",
            "C-STOREs refused since the start, by status",
            labels=["status"],
        )
        for code, count in gateway.refused.items():
            rejected.add_metric([code], count)
        yield rejected
        security = CounterMetricFamily(
            "appliance_security_events", "connections refused by the gateway's admission (floods, slow peers)"
        )
        security.add_metric([], gateway.security_events)
        yield security
        logins = CounterMetricFamily(
            "appliance_sign_ins_failed", "sign-ins refused since this service started"
        )
        logins.add_metric([], accounts.failed_sign_ins())
        yield logins


_LATENCY_BUCKETS = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


def _histogram(seconds: list[float]) -> tuple[list[tuple[str, float]], float]:
    counts = [(f"{edge:g}", float(sum(1 for s in seconds if s <= edge))) for edge in _LATENCY_BUCKETS]
    return [*counts, ("+Inf", float(len(seconds)))], sum(seconds)


def router(app: Appliance, capacity: Callable[[], GatewayCapacity]) -> APIRouter:
    routes = APIRouter(tags=["metrics"])
    registry = CollectorRegistry()
    registry.register(_ApplianceCollector(app, capacity))

    @routes.get("/metrics")
    def metrics(caller: CurrentCaller) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return routes
