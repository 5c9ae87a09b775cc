"""`take_snapshot` (PROTOCOL 5.9) and `get_streams` (5.16)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from camera_service.media.publisher import PUBLISHING, RtspPublisher
from camera_service.media.snapshots import SnapshotTaker, parse_request
from camera_service.methods.cameras import device_param, find_camera
from camera_service.rpc.registry import MethodRegistry
from camera_service.web.live import LiveView

if TYPE_CHECKING:
    from camera_service.cameras.monitor import CameraMonitor


class MediaApi:
    """Handlers over the capture manager's consumers."""

    def __init__(
        self,
        monitor: CameraMonitor,
        snapshots: SnapshotTaker,
        live: LiveView,
        publisher: RtspPublisher,
    ) -> None:
        self.monitor = monitor
        self.snapshots = snapshots
        self.live = live
        self.publisher = publisher

    def get_streams(self, ctx: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Running captures with their live viewers; a camera published over RTSP adds its
        publisher's state, counts it as one reader while connected and adds its bytes."""
        streams = self.live.streams()
        for entry in streams:
            stats = self.publisher.stats(entry["device"])
            if stats is not None:
                entry["readers"] += 1 if stats["state"] == PUBLISHING else 0
                entry["bytes_sent"] += stats["bytes_sent"]
                entry["publisher"] = stats
        return streams

    async def take_snapshot(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        device_param(params)
        request = parse_request(params, self.snapshots.config.snapshots.quality)
        camera = find_camera(self.monitor, params)
        return await self.snapshots.take(camera, request)


def register(registry: MethodRegistry, api: MediaApi) -> None:
    """Add the media methods to `registry`."""
    registry.add("take_snapshot", api.take_snapshot, "operator")
    registry.add("get_streams", api.get_streams, "viewer")
