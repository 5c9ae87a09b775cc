"""`/health`, `/health/ready` and `/metrics` (PROTOCOL section 7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from camera_service import __version__
from camera_service.health import UNHEALTHY, service_health, utc_timestamp
from camera_service.metrics import Metrics, prometheus_text
from camera_service.web.app import HttpApp
from camera_service.web.responses import NO_STORE, Request, Response, json_response

if TYPE_CHECKING:
    from camera_service.cameras.monitor import CameraMonitor
    from camera_service.rpc.registry import MethodRegistry
    from camera_service.server.connections import ConnectionTable

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def add_health_routes(
    http: HttpApp,
    monitor: CameraMonitor,
    table: ConnectionTable,
    metrics: Metrics,
    registry: MethodRegistry,
) -> None:
    """Answers for load balancers, service managers and Prometheus; none of them reveals
    camera names, tokens or configuration."""

    def health(request: Request) -> Response:
        # `/health` is binary: degraded (a camera in ERROR) still serves, so it is 200.
        failed = service_health(monitor) == UNHEALTHY
        return json_response(
            503 if failed else 200,
            {
                "status": "unhealthy" if failed else "healthy",
                "timestamp": utc_timestamp(),
                "uptime": round(metrics.uptime(), 3),
                "version": __version__,
            },
        )

    def ready(request: Request) -> Response:
        if table.accepting and monitor.first_scan_done:
            return json_response(200, {"status": "ready"})
        return json_response(503, {"status": "not_ready"})

    def prometheus(request: Request) -> Response:
        body = prometheus_text(metrics, table, registry.entries(), monitor.snapshot())
        return Response(200, body, {"Content-Type": PROMETHEUS_TYPE, **NO_STORE})

    http.add_route("/health", health)
    http.add_route("/health/ready", ready)
    http.add_route("/metrics", prometheus)
