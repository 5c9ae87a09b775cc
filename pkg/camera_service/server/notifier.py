"""The WebSocket notifier: a bus subscriber that turns domain events into notification bytes
for every authenticated connection (PROTOCOL section 6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from camera_service.cameras.model import camera_list_entry
from camera_service.cameras.streams import StreamUrls
from camera_service.core.events import CameraChanged, EventBus, Subscription

if TYPE_CHECKING:
    from camera_service.config import Config
    from camera_service.server.connections import ConnectionTable

CAMERA_STATUS_UPDATE = "camera_status_update"


class WebSocketNotifier:
    """Subscribes to the bus while started; each event is encoded once and the same bytes go
    to every connection (the compiled fan-out)."""

    def __init__(self, bus: EventBus, table: ConnectionTable, streams: StreamUrls) -> None:
        self.bus = bus
        self.table = table
        self.streams = streams
        self._subscriptions: list[Subscription[CameraChanged]] = []

    async def start(self) -> None:
        self._subscriptions.append(self.bus.subscribe(CameraChanged, self.on_camera_changed))

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()

    def apply(self, config: Config) -> None:
        self.streams = StreamUrls.from_config(config)

    def on_camera_changed(self, event: CameraChanged) -> None:
        """Send one `camera_status_update` for the change to every authenticated client."""
        self.table.broadcast(CAMERA_STATUS_UPDATE, camera_list_entry(event.camera, self.streams))
