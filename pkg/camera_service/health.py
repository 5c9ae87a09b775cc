"""`/health`, `/health/ready` and `/metrics` on the WebSocket port (PROTOCOL.md section 7)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from camera_service.metrics import prometheus_text
from camera_service.server import http


def utc_timestamp(ts: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def monitor_failed(services: Any) -> bool:
    monitor = services.monitor
    return monitor is None or monitor.state == "error"


def health_routes(services: Any) -> dict[bytes, Any]:
    def health(request: Any) -> Any:
        failed = monitor_failed(services)
        return http.respond_json(
            503 if failed else 200,
            {
                "status": "unhealthy" if failed else "healthy",
                "timestamp": utc_timestamp(),
                "uptime": round(services.uptime(), 3),
                "version": services.version,
            },
        )

    def ready(request: Any) -> Any:
        monitor = services.monitor
        is_ready = (
            services.server is not None
            and services.server.is_serving
            and monitor is not None
            and monitor.first_scan_done
        )
        if is_ready:
            return http.respond_json(200, {"status": "ready"})
        return http.respond_json(503, {"status": "not_ready"})

    def metrics(request: Any) -> Any:
        return http.respond(200, prometheus_text(services), http.PROMETHEUS_HEADERS)

    return {b"/health": health, b"/health/ready": ready, b"/metrics": metrics}
