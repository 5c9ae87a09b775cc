"""The listening port. Each connection's request line decides who answers it: picows for the
WebSocket path (the JSON-RPC hot path, unchanged), the HTTP app for every other path.

Both sides keep their own parser (picows' C handshake parser, h11); this module only looks at
the request target of the first line to pick one, then moves the transport over with
`set_protocol` and hands on the bytes read so far, the way picows itself moves a transport
to its protocol after a proxy handshake.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from typing import TYPE_CHECKING, Any

from picows import WSAutoPingStrategy, WSCloseCode, WSUpgradeResponse, WSUpgradeResponseWithListener
from picows.picows import WSProtocol  # type: ignore[attr-defined]

from camera_service.auth.rate_limit import TokenBucket
from camera_service.rpc._jsonrpc import CallContext
from camera_service.server._listener import LatencyHistogram, RpcListener
from camera_service.server.connections import ConnectionTable
from camera_service.web.app import HttpApp
from camera_service.web.connection import MAX_HEAD_BYTES, HttpConnection
from camera_service.web.responses import over_capacity

if TYPE_CHECKING:
    from camera_service.config import Config
    from camera_service.rpc._jsonrpc import Dispatcher

log = logging.getLogger("camera_service.server")

# Seconds a refused client is asked to wait before it tries again.
RETRY_AFTER_S = 1
# Small initial read buffer per connection: JSON-RPC requests are small, picows grows it
# when a bigger message arrives, and 10,000 idle connections must stay cheap.
READ_BUFFER_INIT_SIZE = 2048
LISTEN_BACKLOG = 4096
_PICOWS_LOGGER = logging.getLogger("picows.camera_service.picows")


def make_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    """A server TLS context from a PEM certificate chain and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class PortServer:
    """Accepts connections on `server.host:server.port` and routes each to WebSocket or HTTP;
    owns the connection limit, the handshake timeout and graceful shutdown."""

    def __init__(
        self,
        config: Config,
        table: ConnectionTable,
        dispatcher: Dispatcher,
        latency: LatencyHistogram,
        http: HttpApp,
    ):
        self.settings = config.server
        self.security = config.security
        self.table = table
        self.dispatcher = dispatcher
        self.latency = latency
        self.http = http
        self._client_ids = itertools.count(1)
        self._ws_path = self.settings.websocket_path
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.sockets[0].getsockname()[1]

    def apply(self, config: Config) -> None:
        """Live keys (max_connections, max_batch, max_send_buffer_bytes, the rate limit)
        apply at once; the send buffer limit applies to connections opened after the change."""
        self.settings = config.server
        self.dispatcher.max_batch = config.server.max_batch
        old, new = self.security, config.security
        self.security = new
        if (old.rate_limit_rpm, old.rate_limit_burst) != (new.rate_limit_rpm, new.rate_limit_burst):
            for listener in self.table:
                listener.ctx.bucket.reconfigure(new.rate_limit_rpm, new.rate_limit_burst)

    def new_context(self, client_id: str) -> CallContext:
        # Every connection has a bucket; rpm or burst 0 makes it let everything through.
        """The per-connection state for a new WebSocket client, with its token bucket."""
        bucket = TokenBucket(self.security.rate_limit_rpm, self.security.rate_limit_burst)
        return CallContext(client_id, bucket=bucket)

    async def start(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        ssl_context = make_ssl_context(s.tls_cert, s.tls_key) if s.tls_cert and s.tls_key else None
        self._server = await loop.create_server(
            lambda: _FirstLine(self),
            s.host,
            s.port,
            ssl=ssl_context,
            # A burst of connects must not overflow asyncio's default backlog of 100 (SYN
            # retries cost a second each); the kernel caps this at net.core.somaxconn.
            backlog=LISTEN_BACKLOG,
        )
        self.table.accepting = True
        scheme = "wss" if ssl_context else "ws"
        log.info(
            "listening",
            extra={
                "url": f"{scheme}://{s.host}:{self.port}{s.websocket_path}",
                "host": s.host,
                "port": self.port,
            },
        )

    async def stop(self) -> None:
        """Stop accepting, close every connection with 1001, wait for in-flight requests."""
        if self._server is None:
            return
        timeout = self.settings.shutdown_timeout
        self.table.accepting = False
        self.table.stop_keepalive()
        self._server.close()
        self.table.close_all(WSCloseCode.GOING_AWAY.value, "server shutting down")
        await self.dispatcher.drain(timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.table) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for listener in self.table:
            listener.transport.disconnect(False)
        self._server = None

    # ---- routing -----------------------------------------------------------------------------

    def is_full(self) -> bool:
        """Whether a new connection must be refused (limit reached, or shutting down)."""
        return (
            not self.table.accepting
            or self.table.open_connections() >= self.settings.max_connections
        )

    def websocket_protocol(self) -> Any:
        """A picows protocol for one connection, configured like `ws_create_server` would."""
        s = self.settings
        return WSProtocol(
            None,  # host and port: server side
            None,  # path: server side
            False,  # not the client side
            self._on_upgrade,
            _PICOWS_LOGGER,
            True,  # disconnect on an exception in a listener callback
            s.handshake_timeout,
            # Keepalive is ours (ConnectionTable): one timer for all connections instead of
            # picows' task per connection. Client pings are still answered by picows.
            False,
            20,
            20,
            WSAutoPingStrategy.PING_WHEN_IDLE,
            True,  # answer client pings
            s.max_message_bytes,
            None,  # extra headers: client side only
            READ_BUFFER_INIT_SIZE,
        )

    def http_protocol(self) -> HttpConnection:
        """The HTTP protocol for one connection (answering 503 when the port is full)."""
        refuse = None
        if self.is_full():
            self.table.refused += 1
            refuse = over_capacity(RETRY_AFTER_S)
        return HttpConnection(self.http, self.table, self.settings.handshake_timeout, refuse)

    def _on_upgrade(self, request: Any) -> Any:
        # picows calls this with the parsed handshake; it answers 500 if this raises.
        try:
            if self.is_full():
                self.table.refused += 1
                refusal = over_capacity(RETRY_AFTER_S)
                response = WSUpgradeResponse.create_error_response(
                    refusal.status, refusal.body, refusal.headers
                )
                return WSUpgradeResponseWithListener(response, None)
            client_id = f"c{next(self._client_ids)}"
            return RpcListener(
                self.dispatcher,
                self.table,
                self.latency,
                self.settings.max_message_bytes,
                self.settings.max_send_buffer_bytes,
                self.new_context(client_id),
            )
        except Exception:
            log.error("WebSocket upgrade failed", exc_info=True)
            raise

    def is_websocket_target(self, method: bytes, target: bytes) -> bool:
        """Whether a request line asks for the WebSocket endpoint."""
        path = target.split(b"?", 1)[0]
        return method == b"GET" and path.decode("latin-1") == self._ws_path


class _FirstLine(asyncio.Protocol):
    """Holds a new connection until its request line is in, then hands it on."""

    def __init__(self, server: PortServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are no asyncio.Transport subclass, so no isinstance check.
        self._transport = transport  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(
            self._server.settings.handshake_timeout,
            transport.abort,  # type: ignore[attr-defined]
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n")
        if end < 0 and len(self._buffer) < MAX_HEAD_BYTES:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        parts = bytes(self._buffer[: max(end, 0)]).split(b" ")
        transport = self._transport
        assert transport is not None
        if len(parts) == 3 and self._server.is_websocket_target(parts[0], parts[1]):
            protocol = self._server.websocket_protocol()
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            _feed_buffered(protocol, bytes(self._buffer))
        else:
            # h11 judges the request line itself, malformed ones included.
            connection = self._server.http_protocol()
            transport.set_protocol(connection)
            connection.connection_made(transport)
            connection.data_received(bytes(self._buffer))
        self._buffer = bytearray()


def _feed_buffered(protocol: Any, data: bytes) -> None:
    """Give bytes already read to a BufferedProtocol, in as many pieces as its buffer takes."""
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(len(view))
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]
