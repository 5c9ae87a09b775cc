"""Async Python client for the camera service (picows), for scripts, tests and the load generator.

    async with await RpcClient.connect("ws://127.0.0.1:8002/ws") as client:
        await client.authenticate(token)
        cameras = await client.call("get_camera_list")
        async for note in client.notifications():
            print(note["method"], note["params"])

Error responses raise `RpcCallError` with the server's code, message and data.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl as ssl_module
from collections.abc import AsyncIterator
from typing import Any

import orjson
from picows import WSCloseCode, WSListener, WSMsgType, ws_connect


class RpcCallError(Exception):
    """The server answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(
            f"{code} {message}"
            + (f": {data.get('reason')}" if isinstance(data, dict) and "reason" in data else "")
        )
        self.code = code
        self.message = message
        self.data = data


class ConnectionClosed(Exception):
    """The connection closed before the response arrived."""

    def __init__(self, code: int | None, reason: str = ""):
        super().__init__(f"connection closed ({code}) {reason}".strip())
        self.code = code
        self.reason = reason


class _ClientListener(WSListener):
    def __init__(self, client: RpcClient):
        self.client = client

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.client._on_message(frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            self.client._on_close(int(frame.get_close_code()), frame.get_close_reason() or "")
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    def on_ws_disconnected(self, transport) -> None:
        self.client._on_close(self.client.close_code, self.client.close_reason)


class RpcClient:
    def __init__(self) -> None:
        self.transport: Any = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = asyncio.Event()
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future] = {}
        self._batches: list[tuple[frozenset, asyncio.Future]] = []
        self._notifications: asyncio.Queue = asyncio.Queue()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        ssl: ssl_module.SSLContext | None = None,
        timeout: float = 10.0,
        extra_headers: dict[str, str] | None = None,
    ) -> RpcClient:
        client = cls()
        kwargs: dict[str, Any] = {"websocket_handshake_timeout": timeout}
        if ssl is not None:
            kwargs["ssl_context"] = ssl
        if extra_headers:
            kwargs["extra_headers"] = extra_headers
        client.transport, _ = await ws_connect(lambda: _ClientListener(client), url, **kwargs)
        return client

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- requests -------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = 30.0,
        **kwargs: Any,
    ) -> Any:
        """Send one request and return its result; raises RpcCallError on an error response."""
        if kwargs:
            params = {**(params or {}), **kwargs}
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            message["params"] = params
        try:
            self._send(orjson.dumps(message))
            response = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)
        return _unwrap(response)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        """A request without id: the server runs it and never answers."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self._send(orjson.dumps(message))

    async def batch(
        self, calls: list[tuple[str, dict[str, Any] | None]], *, timeout: float | None = 30.0
    ) -> list[Any]:
        """Send calls as one batch; returns results (or RpcCallError objects) in call order."""
        ids = [next(self._ids) for _ in calls]
        messages = []
        for request_id, (method, params) in zip(ids, calls):
            message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
            if params is not None:
                message["params"] = params
            messages.append(message)
        future = asyncio.get_running_loop().create_future()
        entry = (frozenset(ids), future)
        self._batches.append(entry)
        try:
            self._send(orjson.dumps(messages))
            responses = await asyncio.wait_for(future, timeout)
        finally:
            if entry in self._batches:
                self._batches.remove(entry)
        by_id = {r.get("id"): r for r in responses}
        out = []
        for request_id in ids:
            try:
                out.append(_unwrap(by_id[request_id]))
            except RpcCallError as exc:
                out.append(exc)
        return out

    async def authenticate(self, token: str, auth_type: str = "auto") -> dict[str, Any]:
        return await self.call("authenticate", {"auth_token": token, "auth_type": auth_type})

    async def notifications(self) -> AsyncIterator[dict[str, Any]]:
        """Server notifications as they arrive, until the connection closes."""
        while True:
            if self.closed.is_set() and self._notifications.empty():
                return
            getter = asyncio.ensure_future(self._notifications.get())
            closed = asyncio.ensure_future(self.closed.wait())
            done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                closed.cancel()
                yield getter.result()
            else:
                getter.cancel()

    async def next_notification(self, timeout: float = 10.0) -> dict[str, Any]:
        return await asyncio.wait_for(self._notifications.get(), timeout)

    def pending_notifications(self) -> int:
        return self._notifications.qsize()

    async def close(self) -> None:
        if self.transport is not None and not self.closed.is_set():
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()
            await self.transport.wait_disconnected()

    # ---- plumbing -------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self.closed.is_set():
            raise ConnectionClosed(self.close_code, self.close_reason)
        self.transport.send(WSMsgType.TEXT, data)

    def _on_message(self, data: bytes) -> None:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(message, list):
            ids = frozenset(r.get("id") for r in message if isinstance(r, dict))
            for entry in self._batches:
                if entry[0] >= ids and not entry[1].done():
                    entry[1].set_result(message)
                    return
            return
        if not isinstance(message, dict):
            return
        if "method" in message and "id" not in message:
            self._notifications.put_nowait(message)
            return
        future = self._pending.get(message.get("id"))
        if future is not None and not future.done():
            future.set_result(message)

    def _on_close(self, code: int | None, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.closed.set()
        error = ConnectionClosed(self.close_code, self.close_reason)
        for future in list(self._pending.values()) + [f for _, f in self._batches]:
            if not future.done():
                future.set_exception(error)


def _unwrap(response: dict[str, Any]) -> Any:
    if "error" in response:
        error = response["error"]
        raise RpcCallError(error.get("code"), error.get("message"), error.get("data"))
    return response.get("result")
