"""Who is connected to the port: the WebSocket listeners (for fan-out and keepalive) and how
many HTTP connections are open (they count against the same connection limit)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from camera_service.rpc._jsonrpc import encode_notification, monotonic
from camera_service.server._listener import fan_out, keepalive_sweep


class ConnectionTable:
    """Open connections of the port, and broadcast to the WebSocket ones."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        ping_interval: float = 30.0,
        ping_timeout: float = 10.0,
    ):
        self.loop = loop
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._keepalive: asyncio.TimerHandle | None = None
        self._listeners: set[Any] = set()
        self.total_connections = 0
        self.http_open = 0
        # Set by the port server: whether it accepts connections, and how many it refused.
        self.accepting = False
        self.refused = 0

    def add(self, listener: Any) -> None:
        self._listeners.add(listener)
        self.total_connections += 1
        if self._keepalive is None:
            self._keepalive = self.loop.call_later(self.ping_interval, self._sweep)

    def _sweep(self) -> None:
        """Keepalive for every connection from one timer, armed only while there are any."""
        self._keepalive = None
        due = keepalive_sweep(
            tuple(self._listeners), monotonic(), self.ping_interval, self.ping_timeout
        )
        if due is not None:
            self._keepalive = self.loop.call_later(max(due - monotonic(), 0.001), self._sweep)

    def stop_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None

    def remove(self, listener: Any) -> None:
        self._listeners.discard(listener)

    def __len__(self) -> int:
        """Open WebSocket connections."""
        return len(self._listeners)

    def __iter__(self):
        return iter(tuple(self._listeners))

    def open_connections(self) -> int:
        """WebSocket and HTTP connections together: what the connection limit counts."""
        return len(self._listeners) + self.http_open

    def broadcast(self, method: str, params: Any, role_at_least: int = 1) -> int:
        """Encode once and send the same bytes to every connection whose role is high enough;
        returns how many connections it was written to."""
        data = encode_notification(method, params)
        return fan_out(tuple(self._listeners), data, role_at_least, time.time())

    def close_all(self, code: int, reason: str) -> None:
        for listener in tuple(self._listeners):
            listener.close_with(code, reason)
