"""Shared fixtures: a real service on 127.0.0.1 (in this test's event loop), real clients,
real JWTs. Nothing of the service is mocked."""

from __future__ import annotations

import asyncio
import os
import re
import time
from typing import Any

import jwt
import orjson
import pytest
from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

from camera_service.app import Application
from camera_service.client import RpcClient
from camera_service.config import load_config

# The FUSE fake camera fixtures (fake_v4l2_mount, fake_cameras) for every test directory.
pytest_plugins = ["camera_service.testing.pytest_plugin"]

TEST_JWT_SECRET = "test-secret-0123456789abcdef0123456789abcdef"


def merge(base: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]] | None):
    out = {section: dict(values) for section, values in base.items()}
    for section, values in (extra or {}).items():
        out.setdefault(section, {}).update(values)
    return out


@pytest.fixture
def test_overrides(tmp_path) -> dict[str, dict[str, Any]]:
    device_dir = tmp_path / "dev"
    device_dir.mkdir()
    return {
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_timeout": 2.0},
        "security": {"jwt_secret": TEST_JWT_SECRET, "state_dir": str(tmp_path / "var")},
        "camera": {"device_dir": str(device_dir)},
        "logging": {"level": "warning"},
    }


@pytest.fixture
def make_config(test_overrides, tmp_path):
    # An empty file of our own, so the default search (./conf/default.toml) plays no part.
    config_file = tmp_path / "test-config.toml"
    config_file.write_text("")

    def make(extra: dict[str, dict[str, Any]] | None = None):
        return load_config(config_file, env={}, overrides=merge(test_overrides, extra))

    return make


@pytest.fixture
async def start_app(make_config):
    """`await start_app({...overrides})` -> a running Application; stopped after the test."""
    apps: list[Application] = []

    async def start(extra: dict[str, dict[str, Any]] | None = None, **kwargs: Any):
        app = Application(make_config(extra), env={}, **kwargs)
        await app.start()
        apps.append(app)
        return app

    yield start
    for app in reversed(apps):
        await app.stop()


@pytest.fixture
async def app(start_app):
    return await start_app()


def ws_url(app: Application) -> str:
    return f"ws://127.0.0.1:{app.port}{app.config.server.websocket_path}"


def mint_token(
    role: str = "viewer",
    user: str = "alice",
    ttl: float = 3600,
    secret: str = TEST_JWT_SECRET,
    **claims: Any,
) -> str:
    now = int(time.time())
    payload = {"user_id": user, "role": role, "iat": now, "exp": now + ttl, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.fixture
async def connect(app):
    """`await connect(role=None)` -> an RpcClient to `app`, authenticated when role is given."""
    clients: list[RpcClient] = []

    async def open_client(role: str | None = None, target: Application | None = None):
        client = await RpcClient.connect(ws_url(target or app))
        clients.append(client)
        if role is not None:
            await client.authenticate(mint_token(role, user=f"{role}-user"))
        return client

    yield open_client
    for client in clients:
        try:
            await asyncio.wait_for(client.close(), 2)
        except Exception:
            pass


class RawListener(WSListener):
    """Keeps every frame: text payloads, and the close code when the server closes."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue = asyncio.Queue()
        self.close_code: int | None = None
        self.disconnected = asyncio.Event()

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.messages.put_nowait(frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            self.close_code = int(frame.get_close_code())
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    def on_ws_disconnected(self, transport) -> None:
        self.disconnected.set()


class RawClient:
    """Byte-level WebSocket client for envelope and transport tests."""

    def __init__(self, transport, listener: RawListener):
        self.transport = transport
        self.listener = listener

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> RawClient:
        transport, listener = await ws_connect(RawListener, url, **kwargs)
        return cls(transport, listener)

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.transport.send(WSMsgType.TEXT, data)

    def send_binary(self, data: bytes) -> None:
        self.transport.send(WSMsgType.BINARY, data)

    async def recv(self, timeout: float = 5.0) -> bytes:
        return await asyncio.wait_for(self.listener.messages.get(), timeout)

    async def recv_json(self, timeout: float = 5.0) -> Any:
        return orjson.loads(await self.recv(timeout))

    async def request(self, data: bytes | str | dict | list, timeout: float = 5.0) -> Any:
        self.send(orjson.dumps(data) if isinstance(data, (dict, list)) else data)
        return await self.recv_json(timeout)

    async def expect_silence(self, seconds: float = 0.3) -> None:
        try:
            data = await asyncio.wait_for(self.listener.messages.get(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected no message, got {data!r}")

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        await asyncio.wait_for(self.listener.disconnected.wait(), timeout)
        return self.listener.close_code

    async def close(self) -> None:
        if not self.listener.disconnected.is_set():
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()
            await asyncio.wait_for(self.listener.disconnected.wait(), 2)


@pytest.fixture
async def raw_connect(app):
    clients: list[RawClient] = []

    async def open_raw(target: Application | None = None, role: str | None = None, **kw: Any):
        client = await RawClient.open(ws_url(target or app), **kw)
        clients.append(client)
        if role is not None:
            reply = await client.request(
                {
                    "jsonrpc": "2.0",
                    "method": "authenticate",
                    "id": 0,
                    "params": {"auth_token": mint_token(role)},
                }
            )
            assert "result" in reply, reply
        return client

    yield open_raw
    for client in clients:
        try:
            await client.close()
        except Exception:
            pass


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def wait_until(predicate, timeout: float, what: str) -> None:
    """Wait for `predicate()` to become true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """(status, headers with lower-case names) of a raw HTTP/1.1 response head."""
    lines = head.decode("latin-1").split("\r\n")
    match = re.fullmatch(r"HTTP/1\.1 (\d{3})(?: .*)?", lines[0])
    assert match, lines[0]
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return int(match.group(1)), headers
