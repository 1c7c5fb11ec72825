"""Probes for an orchestrator, and the metrics listener.

* ``GET /health``: the process is up and serving (liveness). Never touches the
  database: a database outage must not make Kubernetes restart every replica.
* ``GET /ready``: the database answers a query and the output storage is reachable
  (readiness: an unready replica gets no traffic). 503 with what failed otherwise.
  A full disk is reported (``"disk": "full"``) but keeps the replica ready: reads
  still work there, and writes answer 503 with ``Retry-After`` by themselves.
* :func:`start_metrics_listener`: ``/metrics`` on a port of its own
  (``serve --metrics-port``), for Prometheus on the internal network; on the API
  port ``/metrics`` needs an admin key.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from sticker_maker import __version__
from sticker_maker.api import schemas
from sticker_maker.api.contract import doc
from sticker_maker.api.services import Services, services
from sticker_maker.faults import is_disk_full, unavailable

log = logging.getLogger("sticker_maker.api")
router = APIRouter(tags=["service"])

#: free bytes under which local storage counts as full in ``/ready``'s report
LOW_SPACE_BYTES = 16 * 1024 * 1024
#: seconds each readiness check may take before it counts as failed
CHECK_TIMEOUT = 3.0


@router.get("/health", summary="Liveness: the process is up", **doc(schemas.Health))
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get(
    "/ready",
    summary="Readiness: the database and the storage answer",
    **doc(schemas.Ready, others={503: schemas.Ready}),
)
def ready(svc: Services = Depends(services)) -> JSONResponse:
    checks = readiness(svc)
    ok = checks["database"] == "ok" and checks["storage"] == "ok"
    headers = {} if ok else {"Retry-After": "5"}
    body = {"status": "ready" if ok else "unavailable", **checks}
    return JSONResponse(body, status_code=200 if ok else 503, headers=headers)


def readiness(svc: Services) -> dict[str, str]:
    """``{"database": "ok" | why, "storage": "ok" | why, "disk": "ok" | "full" | ...}``."""
    checks: dict[str, str] = {}
    try:
        with svc.db.read() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        fault = unavailable(exc)
        checks["database"] = fault.reason if fault else f"error: {type(exc).__name__}"
        log.warning("readiness: database check failed: %s", exc)
    try:
        checks["storage"] = "ok" if _storage_reachable(svc.storage) else "unreachable"
    except Exception as exc:
        checks["storage"] = "disk_full" if is_disk_full(exc) else f"error: {type(exc).__name__}"
        log.warning("readiness: storage check failed: %s", exc)
    checks["disk"] = _disk(svc)
    return checks


def _storage_reachable(storage: Any) -> bool:
    check = getattr(storage, "reachable", None)
    return bool(check()) if check is not None else True


def _disk(svc: Services) -> str:
    """Free space where this process writes (its home: SQLite, local files)."""
    try:
        free = shutil.disk_usage(svc.settings.home).free
    except OSError:
        return "unknown"
    return "full" if free < LOW_SPACE_BYTES else "ok"


# -- /metrics on a listener of its own ------------------------------------------------


class _ProcessMetrics:
    """This process's own metrics (the default registry), for a combined registry."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client import REGISTRY

        yield from REGISTRY.collect()


def metrics_registry(svc: Services) -> Any:
    """The database gauges and this process's metrics in one registry."""
    from prometheus_client import CollectorRegistry

    from sticker_maker.api.metrics import DatabaseCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(svc))  # type: ignore[arg-type]
    registry.register(_ProcessMetrics())  # type: ignore[arg-type]
    return registry


class MetricsListener:
    """``/metrics`` (Prometheus text) on ``host:port``, in a daemon thread; ``stop()`` ends it."""

    def __init__(self, svc: Services, port: int, host: str = "0.0.0.0") -> None:
        self.svc, self.port, self.host = svc, port, host
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from prometheus_client import start_http_server

        self._server, self._thread = start_http_server(
            self.port, addr=self.host, registry=metrics_registry(self.svc)
        )
        self.port = self._server.server_address[1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


__all__ = ["MetricsListener", "health", "readiness", "ready", "router"]
