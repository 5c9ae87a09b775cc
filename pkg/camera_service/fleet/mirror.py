"""What the broker should hold for this node, built from current truth, and what is waiting
to be sent there (PROTOCOL 12). No MQTT client here: the bridge feeds it events and sends
what `next_message` gives.

Bounded by construction: retained topics wait in a dict keyed by topic (a newer payload
replaces an unsent older one, so at most a few topics per camera), events in a deque of
`MAX_PENDING_EVENTS`. While no broker is connected nothing is kept at all; `rebuild()` on the
next connection recomputes every retained topic from the camera monitor instead of
replaying history.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from camera_service import __version__
from camera_service.fleet.topics import (
    CLEAR,
    Topics,
    discovery_configs,
    discovery_topics,
    info_payload,
)

if TYPE_CHECKING:
    from camera_service.cameras.model import Camera
    from camera_service.cameras.monitor import CameraMonitor

# Events waiting for a connected broker; past this the oldest go (a burst, not a backlog).
MAX_PENDING_EVENTS = 1000


class Mirror:
    """The node's retained topics and pending events."""

    def __init__(
        self,
        topics: Topics,
        monitor: CameraMonitor,
        camera_entry: Callable[[Camera], dict[str, Any]],
        discovery: bool,
        host: str,
        started_at: str,
    ) -> None:
        self.topics = topics
        self.monitor = monitor
        self.camera_entry = camera_entry
        self.discovery = discovery
        self.host = host
        self.started_at = started_at
        self.live = False  # a broker is connected: changes are queued for it
        self.wake = asyncio.Event()  # set when something was queued
        self.dropped_events = 0  # events not queued because no broker was connected
        self._retained: dict[str, bytes] = {}  # topic -> newest unsent payload
        self._events: deque[bytes] = deque(maxlen=MAX_PENDING_EVENTS)
        self._announced: set[str] = set()  # cameras whose retained topics the broker has
        self._stills: dict[str, bytes] = {}  # newest JPEG per camera, resent on rebuild

    @property
    def pending(self) -> int:
        return len(self._retained) + len(self._events)

    def connected(self) -> None:
        """A broker is there: rebuild every retained topic from current truth."""
        self.live = True
        self._retained.clear()
        self._events.clear()
        present = {camera.stream_name for camera in self.monitor.snapshot()}
        gone = self._announced - present
        # The broker may have lost everything (a restart without persistence): present
        # cameras get their discovery configs again, gone ones are cleared.
        self._announced = gone
        for name in sorted(present | gone):
            self.camera(name)
            still = self._stills.get(name)
            if still is not None and name in present:
                self._queue(self.topics.snapshot(name), still)
        self.info()

    def disconnected(self) -> None:
        self.live = False
        self._retained.clear()
        self._events.clear()

    def next_message(self) -> tuple[str, bytes, bool] | None:
        """(topic, payload, retain): retained topics first (they are what a subscriber
        waits for), then events in order; None when nothing waits."""
        if self._retained:
            topic = next(iter(self._retained))
            return topic, self._retained.pop(topic), True
        if self._events:
            return self.topics.events, self._events.popleft(), False
        return None

    # ---- changes ---------------------------------------------------------------------------

    def info(self) -> None:
        cameras = [camera.stream_name for camera in self.monitor.snapshot()]
        payload = info_payload(
            __version__, self.topics.node_id, self.host, cameras, self.started_at
        )
        self._queue(self.topics.info, orjson.dumps(payload))

    def camera(self, name: str) -> None:
        """The retained topics of one camera from the monitor's current view: its state (and
        discovery configs the first time), or empty payloads clearing all of them."""
        if not self.live:
            return
        camera = self.monitor.get(name)
        topics = self.topics
        if camera is not None:
            # The state first: it is what subscribers wait for; the configs follow.
            self._queue(topics.state(name), orjson.dumps(self.camera_entry(camera)))
            if name not in self._announced and self.discovery:
                info = camera.device_info
                for topic, config in discovery_configs(
                    topics, name, info["card"], info["bus_info"], info["driver"], __version__
                ):
                    self._queue(topic, orjson.dumps(config))
            self._announced.add(name)
        elif name in self._announced:
            self._announced.discard(name)
            self._stills.pop(name, None)
            self._queue(topics.state(name), CLEAR)
            self._queue(topics.snapshot(name), CLEAR)
            if self.discovery:
                for topic in discovery_topics(topics, name):
                    self._queue(topic, CLEAR)

    def stale(self, name: str) -> None:
        """The broker holds a retained state of `name` from an earlier run: clear it if this
        box has no such camera now."""
        if self.live and self.monitor.get(name) is None:
            self._announced.add(name)
            self.camera(name)

    def still(self, name: str, jpeg: bytes) -> None:
        """The newest picture of a camera (kept for the next rebuild)."""
        if self.monitor.get(name) is None:
            return
        self._stills[name] = jpeg
        self._queue(self.topics.snapshot(name), jpeg)

    def event(self, method: str, params: dict[str, Any]) -> None:
        if not self.live:
            self.dropped_events += 1
            return
        self._events.append(orjson.dumps({"method": method, "params": params}))
        self.wake.set()

    def _queue(self, topic: str, payload: bytes) -> None:
        if not self.live:
            return  # rebuilt from current truth on the next connect
        self._retained.pop(topic, None)  # re-inserted last: the newest change goes out last
        self._retained[topic] = payload
        self.wake.set()
