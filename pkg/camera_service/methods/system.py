"""Admin methods about the service itself (PROTOCOL 5.5-5.7); every value is measured."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from camera_service import __version__
from camera_service.core.component import Passive
from camera_service.health import service_health
from camera_service.metrics import Metrics, request_metrics
from camera_service.rpc.registry import MethodRegistry

if TYPE_CHECKING:
    from camera_service.cameras.monitor import CameraMonitor
    from camera_service.config import Config
    from camera_service.server.connections import ConnectionTable

# V4L2 numbers video nodes with a minor count of 256 (VIDEO_NUM_DEVICES in the kernel).
V4L2_MAX_NODES = 256

BASE_CAPABILITIES = (
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
    "v4l2-capture",
    "snapshots",
    "file-downloads",
    "recordings",
    "retention",
)


class SystemApi(Passive):
    """`get_metrics`, `get_status`, `get_server_info`."""

    def __init__(
        self,
        config: Config,
        monitor: CameraMonitor,
        table: ConnectionTable,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.monitor = monitor
        self.table = table
        self.metrics = metrics

    def apply(self, config: Config) -> None:
        self.config = config

    def capabilities(self) -> list[str]:
        """Only what this build and configuration really provide."""
        capabilities = list(BASE_CAPABILITIES)
        if self.config.server.tls_cert:
            capabilities.append("tls")
        return capabilities

    def get_metrics(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        return request_metrics(self.metrics, self.table)

    def get_status(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": service_health(self.monitor),
            "uptime": round(self.metrics.uptime(), 3),
            "version": __version__,
            "components": {
                "websocket_server": "running" if self.table.accepting else "stopped",
                "camera_monitor": self.monitor.state,
            },
        }

    def get_server_info(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        config = self.config
        formats: list[str] = []
        for camera in self.monitor.snapshot():
            formats.extend(f for f in camera.formats if f not in formats)
        return {
            "name": "Camera Service",
            "version": __version__,
            "capabilities": self.capabilities(),
            "supported_formats": formats,
            "max_cameras": len(config.camera.device_range) or V4L2_MAX_NODES,
            "max_connections": config.server.max_connections,
        }


def register(registry: MethodRegistry, api: SystemApi) -> None:
    """Add the admin methods of PROTOCOL 5.5-5.7 to `registry`."""
    registry.add("get_metrics", api.get_metrics, "admin")
    registry.add("get_status", api.get_status, "admin")
    registry.add("get_server_info", api.get_server_info, "admin")
