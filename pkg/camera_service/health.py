"""The one place that decides how healthy the service is (`/health` and `get_status` agree)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from camera_service.cameras.model import ERROR

if TYPE_CHECKING:
    from camera_service.cameras.monitor import CameraMonitor

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"


def service_health(monitor: CameraMonitor) -> str:
    """unhealthy: the camera monitor is not running (stopped or failed); degraded: some
    camera is in ERROR; healthy otherwise."""
    if monitor.state != "running":
        return UNHEALTHY
    if any(camera.status == ERROR for camera in monitor.snapshot()):
        return DEGRADED
    return HEALTHY


def utc_timestamp(ts: float | None = None) -> str:
    """ISO-8601 UTC with milliseconds and a `Z` suffix."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
