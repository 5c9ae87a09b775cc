"""Topic names and payloads of the fleet bridge (PROTOCOL 12), as pure functions.

`P` = `mqtt.topic_prefix`, `N` = `mqtt.node_id`, `C` = the camera's stream name (`cameraN`).
Nothing here talks to a broker, so the names, the Home Assistant discovery configs and the
backoff schedule are checked without one.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ONLINE = b"online"
OFFLINE = b"offline"
# An empty retained message deletes the retained message of its topic (MQTT 3.3.1.3).
CLEAR = b""

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]+")
_CAMERA = re.compile(r"camera[0-9]{1,9}")


def resolve_node_id(configured: str | None, hostname: str | None = None) -> str:
    """`mqtt.node_id`, or the host name sanitized to `[A-Za-z0-9_-]` (dots and other
    characters become `_`; an empty result is "camera-service")."""
    if configured:
        return configured
    name = socket.gethostname() if hostname is None else hostname
    return _NOT_ALLOWED.sub("_", name).strip("_") or "camera-service"


def backoff_delays() -> Iterator[float]:
    """Seconds to wait before each reconnect attempt: 1, 2, 4, ... capped at 60, forever."""
    delay = BACKOFF_FIRST
    while True:
        yield delay
        delay = min(delay * 2, BACKOFF_MAX)


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic name of one node."""

    prefix: str
    node_id: str
    discovery_prefix: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.node_id}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def info(self) -> str:
        return f"{self.base}/info"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    def state(self, camera: str) -> str:
        return f"{self.base}/cameras/{camera}/state"

    def snapshot(self, camera: str) -> str:
        return f"{self.base}/cameras/{camera}/snapshot"

    def command(self, camera: str) -> str:
        return f"{self.base}/cameras/{camera}/command"

    def command_result(self, camera: str) -> str:
        return f"{self.base}/cameras/{camera}/command/result"

    @property
    def all_commands(self) -> str:
        """The subscription filter for every camera's command topic."""
        return f"{self.base}/cameras/+/command"

    @property
    def all_states(self) -> str:
        return f"{self.base}/cameras/+/state"

    def camera_of(self, topic: str, leaf: str) -> str | None:
        """`C` of `P/N/cameras/C/<leaf>`, when `topic` is such a topic and C is `cameraN`."""
        head = f"{self.base}/cameras/"
        tail = f"/{leaf}"
        if not (topic.startswith(head) and topic.endswith(tail)):
            return None
        camera = topic[len(head) : len(topic) - len(tail)]
        return camera if _CAMERA.fullmatch(camera) else None

    def discovery(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{object_id}/config"


def info_payload(
    version: str, node_id: str, host: str, cameras: list[str], started_at: str
) -> dict[str, Any]:
    """`P/N/info`."""
    return {
        "version": version,
        "node_id": node_id,
        "host": host,
        "cameras": cameras,
        "started_at": started_at,
    }


def discovery_topics(topics: Topics, camera: str) -> list[str]:
    """The three discovery config topics of one camera (to publish or to clear)."""
    object_id = f"{topics.node_id}_{camera}"
    return [
        topics.discovery("camera", object_id),
        topics.discovery("binary_sensor", f"{object_id}_connected"),
        topics.discovery("binary_sensor", f"{object_id}_recording"),
    ]


def discovery_configs(
    topics: Topics, camera: str, card: str, bus_info: str, driver: str, version: str
) -> list[tuple[str, dict[str, Any]]]:
    """(topic, config) of the Home Assistant entities of one camera: the image (the snapshot
    topic), `connected` and `recording` binary sensors read from the state topic.

    `unique_id`s are built from the node id and the stream name only, so they stay the same
    across restarts and re-plugs of the same node; the device's identifiers add the bus info
    (the USB port), which Home Assistant uses to group the three entities.
    """
    object_id = f"{topics.node_id}_{camera}"
    device = {
        "identifiers": [f"camera-service_{topics.node_id}_{bus_info or camera}"],
        "name": card or camera,
        "model": driver or "V4L2 camera",
        "manufacturer": "camera-service",
        "sw_version": version,
    }
    common = {
        "availability_topic": topics.availability,
        "payload_available": ONLINE.decode(),
        "payload_not_available": OFFLINE.decode(),
        "device": device,
    }
    camera_topic, connected_topic, recording_topic = discovery_topics(topics, camera)
    state = topics.state(camera)
    return [
        (
            camera_topic,
            {
                "name": f"{camera} snapshot",
                "unique_id": f"{object_id}_camera",
                "topic": topics.snapshot(camera),
                **common,
            },
        ),
        (
            connected_topic,
            {
                "name": f"{camera} connected",
                "unique_id": f"{object_id}_connected",
                "state_topic": state,
                "value_template": "{{ 'ON' if value_json.status == 'CONNECTED' else 'OFF' }}",
                "device_class": "connectivity",
                **common,
            },
        ),
        (
            recording_topic,
            {
                "name": f"{camera} recording",
                "unique_id": f"{object_id}_recording",
                "state_topic": state,
                "value_template": "{{ 'ON' if value_json.recording | default(false) else 'OFF' }}",
                "icon": "mdi:record-rec",
                **common,
            },
        ),
    ]
