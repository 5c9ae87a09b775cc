"""The WebSocket notifier: a bus subscriber that turns domain events into notification bytes
for every authenticated connection (PROTOCOL section 6)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from camera_service.cameras.model import camera_list_entry
from camera_service.cameras.streams import StreamUrls
from camera_service.core.events import CameraChanged, EventBus, RecordingChanged, Subscription

if TYPE_CHECKING:
    from camera_service.config import Config
    from camera_service.server.connections import ConnectionTable

CAMERA_STATUS_UPDATE = "camera_status_update"
RECORDING_STATUS_UPDATE = "recording_status_update"

# Every event type that becomes a notification (PROTOCOL 6). The WebSocket notifier and the
# MQTT bridge (`P/N/events`) both subscribe to these and map them with `notification`, so
# the two can never disagree: a new notification is one entry here and one case there.
NOTIFIED_EVENTS: tuple[type, ...] = (CameraChanged, RecordingChanged)


def notification(event: Any, streams: StreamUrls) -> tuple[str, dict[str, Any]] | None:
    """(method, params) of the notification for `event`, or None when it has none."""
    if isinstance(event, CameraChanged):
        return CAMERA_STATUS_UPDATE, camera_list_entry(event.camera, streams)
    if isinstance(event, RecordingChanged):
        params: dict[str, Any] = {
            "device": event.device,
            "status": event.status,
            "filename": event.filename,
            "duration": event.duration,
            "session_id": event.session_id,
        }
        if event.reason is not None:
            params["reason"] = event.reason
        return RECORDING_STATUS_UPDATE, params
    return None


class WebSocketNotifier:
    """Subscribes to the bus while started; each event is encoded once and the same bytes go
    to every connection (the compiled fan-out)."""

    def __init__(self, bus: EventBus, table: ConnectionTable, streams: StreamUrls) -> None:
        self.bus = bus
        self.table = table
        self.streams = streams
        self._subscriptions: list[Subscription[Any]] = []

    async def start(self) -> None:
        for event_type in NOTIFIED_EVENTS:
            self._subscriptions.append(self.bus.subscribe(event_type, self.on_event))

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()

    def apply(self, config: Config) -> None:
        self.streams = StreamUrls.from_config(config)

    def on_event(self, event: Any) -> None:
        """Send the event's notification to every authenticated client."""
        note = notification(event, self.streams)
        if note is not None:
            self.table.broadcast(*note)
