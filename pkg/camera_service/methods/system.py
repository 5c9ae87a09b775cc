"""Admin methods about the service itself (PROTOCOL 5.5-5.7); every value is measured."""

from __future__ import annotations

from typing import Any

from camera_service.cameras.model import ERROR
from camera_service.metrics import request_metrics
from camera_service.rpc.registry import MethodRegistry

# V4L2 numbers video nodes with a minor count of 256 (VIDEO_NUM_DEVICES in the kernel).
V4L2_MAX_NODES = 256


def service_status(services: Any) -> str:
    """healthy: monitor running, no camera in ERROR; degraded: some camera in ERROR;
    unhealthy: the monitor is not running."""
    monitor = services.monitor
    if monitor is None or monitor.state != "running":
        return "unhealthy"
    if any(camera.status == ERROR for camera in monitor.snapshot()):
        return "degraded"
    return "healthy"


def server_capabilities(services: Any) -> list[str]:
    """Only what this build and configuration really provide."""
    capabilities = [
        "json-rpc-2.0",
        "batch-requests",
        "jwt-auth",
        "api-key-auth",
        "role-based-access",
        "rate-limiting",
        "v4l2-discovery",
        "hotplug-notifications",
        "health-endpoints",
        "prometheus-metrics",
    ]
    if services.config.server.tls_cert:
        capabilities.append("tls")
    return capabilities


def get_metrics(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    return request_metrics(ctx.services)


def get_status(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    services = ctx.services
    monitor_state = services.monitor.state if services.monitor is not None else "stopped"
    return {
        "status": service_status(services),
        "uptime": round(services.uptime(), 3),
        "version": services.version,
        "components": {
            "websocket_server": "running" if services.server.is_serving else "stopped",
            "camera_monitor": monitor_state,
        },
    }


def get_server_info(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    services = ctx.services
    config = services.config
    formats: list[str] = []
    for camera in services.monitor.snapshot():
        formats.extend(f for f in camera.formats if f not in formats)
    return {
        "name": "Camera Service",
        "version": services.version,
        "capabilities": server_capabilities(services),
        "supported_formats": formats,
        "max_cameras": len(config.camera.device_range) or V4L2_MAX_NODES,
        "max_connections": config.server.max_connections,
    }


def register(registry: MethodRegistry) -> None:
    registry.add("get_metrics", get_metrics, "admin")
    registry.add("get_status", get_status, "admin")
    registry.add("get_server_info", get_server_info, "admin")
