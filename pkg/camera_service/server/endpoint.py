"""The listening socket: upgrade routing, the connection limit, TLS and graceful shutdown."""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections.abc import Callable
from typing import Any

from picows import WSCloseCode, ws_create_server

from camera_service.server import http
from camera_service.server._listener import LatencyHistogram, RpcListener
from camera_service.server.connections import ConnectionTable

log = logging.getLogger("camera_service.server")

# Seconds a refused client is asked to wait before it tries again.
RETRY_AFTER_S = 1
# Small initial read buffer per connection: JSON-RPC requests are small, picows grows it
# when a bigger message arrives, and 10,000 idle connections must stay cheap.
READ_BUFFER_INIT_SIZE = 2048
LISTEN_BACKLOG = 4096

HttpRoute = Callable[[Any], Any]


def make_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class WebSocketServer:
    def __init__(
        self,
        settings: Any,
        dispatcher: Any,
        make_context: Callable[[str], Any],
        latency: LatencyHistogram,
        http_routes: dict[bytes, HttpRoute] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ):
        self.settings = settings
        self.dispatcher = dispatcher
        self.make_context = make_context
        self.latency = latency
        self.http_routes = dict(http_routes or {})
        self.loop = loop or asyncio.get_running_loop()
        self.table = ConnectionTable(self.loop, settings.ping_interval, settings.ping_timeout)
        self.refused = 0
        self._client_ids = itertools.count(1)
        self._ws_path = settings.websocket_path.encode()
        self._server: asyncio.Server | None = None
        self._accepting = False

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.sockets[0].getsockname()[1]

    @property
    def is_serving(self) -> bool:
        return self._server is not None and self._accepting

    def apply_settings(self, settings: Any) -> None:
        """Live keys (max_connections, max_batch, max_send_buffer_bytes) apply at once;
        the send buffer limit applies to connections opened after the change."""
        self.settings = settings
        self.dispatcher.max_batch = settings.max_batch

    async def start(self) -> None:
        s = self.settings
        ssl_context = make_ssl_context(s.tls_cert, s.tls_key) if s.tls_cert else None
        self._server = await ws_create_server(
            self._route,
            s.host,
            s.port,
            ssl=ssl_context,
            websocket_handshake_timeout=s.handshake_timeout,
            # Keepalive is ours (ConnectionTable): one timer for all connections instead of
            # picows' task per connection. Client pings are still answered by picows.
            enable_auto_ping=False,
            enable_auto_pong=True,
            max_frame_size=s.max_message_bytes,
            read_buffer_init_size=READ_BUFFER_INIT_SIZE,
            logger_name="camera_service.picows",
            # A burst of connects must not overflow asyncio's default backlog of 100 (SYN
            # retries cost a second each); the kernel caps this at net.core.somaxconn.
            backlog=LISTEN_BACKLOG,
            use_aiofastnet=False,
        )
        self._accepting = True
        scheme = "wss" if ssl_context else "ws"
        log.info(
            "listening",
            extra={
                "url": f"{scheme}://{s.host}:{self.port}{s.websocket_path}",
                "host": s.host,
                "port": self.port,
            },
        )

    def _route(self, request: Any) -> Any:
        # picows answers 500 with the exception text if this raises: it must never raise.
        try:
            # picows itself answers 400 to anything but GET before this runs.
            path = request.path.split(b"?", 1)[0]
            if path == self._ws_path:
                return self._accept()
            route = self.http_routes.get(path)
            if route is not None:
                return route(request)
            return http.not_found()
        except Exception:
            log.error("upgrade routing failed", exc_info=True)
            return http.internal_error()

    def _accept(self) -> Any:
        if not self._accepting or len(self.table) >= self.settings.max_connections:
            self.refused += 1
            return http.over_capacity(RETRY_AFTER_S)
        client_id = f"c{next(self._client_ids)}"
        return RpcListener(
            self.dispatcher,
            self.table,
            self.latency,
            self.settings.max_message_bytes,
            self.settings.max_send_buffer_bytes,
            self.make_context(client_id),
        )

    async def shutdown(self, timeout: float) -> None:
        """Stop accepting, close every connection with 1001, wait for in-flight requests."""
        if self._server is None:
            return
        self._accepting = False
        self.table.stop_keepalive()
        self._server.close()
        self.table.close_all(WSCloseCode.GOING_AWAY, "server shutting down")
        await self.dispatcher.drain(timeout)
        deadline = self.loop.time() + timeout
        while len(self.table) and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        for listener in self.table:
            listener.transport.disconnect(False)
        self._server = None
