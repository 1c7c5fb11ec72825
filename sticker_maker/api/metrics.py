"""``GET /metrics``: Prometheus text format.

Two kinds of numbers:

* read from the database at scrape time, so every API replica reports the same
  (aggregate them with ``max``, not ``sum``): jobs by status, queue depth, age of
  the oldest queued job, workers by state, each worker's heartbeat age;
* this process's own counters and histograms (:mod:`sticker_maker.metrics`: queue
  wait, predict time, GPU-seconds billed, heartbeats, reaped jobs), which
  Prometheus sums over processes. A ``serve`` with its in-process worker reports
  its worker's; a ``sticker-maker worker`` reports them on ``--metrics-port``.

On the API port ``/metrics`` needs an admin key; ``serve --metrics-port`` serves the
same without a key on a port of its own, for Prometheus on the internal network
(``api/health.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select

import sticker_maker.metrics  # noqa: F401  (registers this process's metrics)
from sticker_maker.accounts import ApiKey
from sticker_maker.api.auth import admin_key
from sticker_maker.api.contract import doc
from sticker_maker.api.services import Services, services
from sticker_maker.db import jobs, workers
from sticker_maker.jobs import JobStatus

router = APIRouter(tags=["service"])
log = logging.getLogger("sticker_maker.api")


class DatabaseCollector:
    """Queue and worker gauges computed from the database on each scrape."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "sticker_maker_database_up", "1 when the database answered this scrape, else 0."
        )
        try:
            yield from self._collect()
        except Exception as exc:  # the database away: say so, keep the process's metrics
            log.warning("metrics: database gauges unavailable: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up

    def _collect(self) -> Iterator[Metric]:
        now = time.time()
        with self.svc.db.read() as conn:
            by_status = dict(
                conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status)).all()
            )
            oldest = conn.execute(
                select(func.min(jobs.c.created_at)).where(jobs.c.status == JobStatus.QUEUED.value)
            ).scalar()
            beats = conn.execute(select(workers.c.id, workers.c.state, workers.c.heartbeat_at))
            registry = [(str(w), str(s), float(h)) for w, s, h in beats]

        states = GaugeMetricFamily(
            "sticker_maker_jobs", "Jobs in the database, by status.", labels=["status"]
        )
        for status in JobStatus:
            states.add_metric([status.value], float(by_status.get(status.value, 0)))
        yield states
        yield GaugeMetricFamily(
            "sticker_maker_queue_depth",
            "Jobs waiting for a worker.",
            value=float(by_status.get(JobStatus.QUEUED.value, 0)),
        )
        yield GaugeMetricFamily(
            "sticker_maker_queue_oldest_age_seconds",
            "How long the oldest queued job has waited (0 when the queue is empty).",
            value=max(0.0, now - oldest) if oldest else 0.0,
        )
        lease = self.svc.settings.lease_timeout
        counts: dict[str, int] = {"starting": 0, "idle": 0, "busy": 0, "draining": 0, "lost": 0}
        ages = GaugeMetricFamily(
            "sticker_maker_worker_heartbeat_age_seconds",
            "Seconds since each registered worker's last heartbeat.",
            labels=["worker"],
        )
        for worker_id, state, beat in registry:
            age = max(0.0, now - beat)
            ages.add_metric([worker_id], age)
            key = "lost" if age > lease else state
            counts[key] = counts.get(key, 0) + 1
        live = GaugeMetricFamily(
            "sticker_maker_workers",
            "Registered workers by state ('lost': no heartbeat within the lease timeout).",
            labels=["state"],
        )
        for state, n in counts.items():
            live.add_metric([state], float(n))
        yield live
        yield ages


@router.get(
    "/metrics",
    summary="Prometheus metrics (admin key)",
    response_class=Response,
    **doc(content={"text/plain": {"schema": {"type": "string"}}}),
)
def metrics(
    request: Request, svc: Services = Depends(services), _admin: ApiKey = Depends(admin_key)
) -> Response:
    """Queue and worker gauges from the database, then this process's own metrics.

    Needs an admin key here; ``serve --metrics-port`` serves them without one on a port
    of its own."""
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DatabaseCollector(svc))  # type: ignore[arg-type]
        request.app.state.metrics_registry = registry
    body = generate_latest(registry) + generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
