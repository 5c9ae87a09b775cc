"""The table of open WebSocket connections and notification fan-out."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from camera_service.rpc._jsonrpc import encode_notification, monotonic
from camera_service.server._listener import DispatchState, fan_out, keepalive_sweep


class ConnectionTable(DispatchState):
    """Open connections (their listeners), and broadcast to them.

    `dispatching` and `deferred` let a notification raised while a request is being handled
    wait until that request's response has been written (PROTOCOL section 1, Ordering).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        ping_interval: float = 30.0,
        ping_timeout: float = 10.0,
    ):
        super().__init__()
        self.loop = loop
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._keepalive: asyncio.TimerHandle | None = None
        self._listeners: set[Any] = set()
        self.total_connections = 0

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
        return len(self._listeners)

    def __iter__(self):
        return iter(tuple(self._listeners))

    def broadcast(self, method: str, params: Any, role_at_least: int = 1) -> int:
        """Encode once and send the same bytes to every connection whose role is high enough.

        Returns how many connections it was written to; 0 when it had to wait for the
        response being handled (it goes out right after that response).
        """
        data = encode_notification(method, params)
        if self.dispatching:
            self.deferred.append((data, role_at_least))
            return 0
        return fan_out(tuple(self._listeners), data, role_at_least, time.time())

    def flush_deferred(self) -> None:
        pending, self.deferred = self.deferred, []
        for data, role_at_least in pending:
            fan_out(tuple(self._listeners), data, role_at_least, time.time())

    def close_all(self, code: int, reason: str) -> None:
        for listener in tuple(self._listeners):
            listener.close_with(code, reason)
