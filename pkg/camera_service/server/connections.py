"""The table of open WebSocket connections and notification fan-out."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from camera_service.rpc._jsonrpc import encode_notification

log = logging.getLogger("camera_service.server")


class ConnectionTable:
    """Open connections (their listeners), and broadcast to them.

    `dispatching` and `deferred` let a notification raised while a request is being handled
    wait until that request's response has been written (PROTOCOL section 1, Ordering).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._listeners: set[Any] = set()
        self.dispatching = 0
        self.deferred: list[tuple[bytes, int]] = []
        self.total_connections = 0

    def add(self, listener: Any) -> None:
        self._listeners.add(listener)
        self.total_connections += 1

    def remove(self, listener: Any) -> None:
        self._listeners.discard(listener)

    def __len__(self) -> int:
        return len(self._listeners)

    def __iter__(self):
        return iter(tuple(self._listeners))

    def broadcast(self, method: str, params: Any, role_at_least: int = 1) -> int:
        """Encode once and send the same bytes to every connection whose role is high enough.

        Returns how many connections it was written to (or will be, if deferred).
        """
        data = encode_notification(method, params)
        if self.dispatching:
            self.deferred.append((data, role_at_least))
            return sum(1 for _ in self._matching(role_at_least))
        return self._send_to_all(data, role_at_least)

    def flush_deferred(self) -> None:
        pending, self.deferred = self.deferred, []
        for data, role_at_least in pending:
            self._send_to_all(data, role_at_least)

    def _matching(self, role_at_least: int):
        now = time.time()
        for listener in self._listeners:
            ctx = listener.ctx
            if ctx.closed or ctx.role_level < role_at_least:
                continue
            if ctx.expires_at and now >= ctx.expires_at:
                continue  # an expired session is no longer authenticated
            yield listener

    def _send_to_all(self, data: bytes, role_at_least: int) -> int:
        sent = 0
        for listener in list(self._matching(role_at_least)):
            try:
                listener.send_message(data)
                sent += 1
            except Exception:  # one broken socket must not stop the fan-out
                log.warning("notification to a connection failed", exc_info=True,
                            extra={"client_id": listener.ctx.client_id})
        return sent

    def close_all(self, code: int, reason: str) -> None:
        for listener in tuple(self._listeners):
            listener.close_with(code, reason)
