"""Admin methods about the service itself (PROTOCOL 5.5-5.7), end to end: real server, real
clients, FUSE fake cameras for the camera-dependent parts."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import mint_token, ws_url

from camera_service import __version__
from camera_service.client import RpcCallError, RpcClient
from camera_service.testing import fakecams

METRICS_KEYS = [
    "active_connections",
    "total_requests",
    "average_response_time",
    "p50_response_time",
    "p99_response_time",
    "error_rate",
    "memory_usage",
    "cpu_usage",
    "uptime",
]
STATUS_KEYS = ["status", "uptime", "version", "components"]
INFO_KEYS = [
    "name",
    "version",
    "capabilities",
    "supported_formats",
    "max_cameras",
    "max_connections",
]
CAPABILITIES = [
    "json-rpc-2.0",
    "batch-requests",
    "jwt-auth",
    "api-key-auth",
    "role-based-access",
    "rate-limiting",
    "v4l2-discovery",
    "hotplug-notifications",
    "health-endpoints",
    "prometheus-metrics",
    "v4l2-capture",
    "snapshots",
    "file-downloads",
    "recordings",
    "retention",
]


@pytest.fixture
async def clients():
    opened: list[RpcClient] = []

    async def open_client(app, role: str | None = "admin") -> RpcClient:
        client = await RpcClient.connect(ws_url(app))
        opened.append(client)
        if role is not None:
            await client.authenticate(mint_token(role, user=f"{role}-user"))
        return client

    yield open_client
    await asyncio.gather(*(asyncio.wait_for(c.close(), 2) for c in opened), return_exceptions=True)


async def call_error(client: RpcClient, method: str, params=None) -> RpcCallError:
    with pytest.raises(RpcCallError) as info:
        await client.call(method, params)
    return info.value


def is_number(value) -> bool:
    return type(value) in (int, float)


async def wait_for_connections(app, count: int, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while len(app.table) != count:
        assert time.monotonic() < deadline, len(app.table)
        await asyncio.sleep(0.01)


# ---- get_metrics ---------------------------------------------------------------------------


async def test_metrics_keys_and_types(start_app, clients):
    app = await start_app()
    admin = await clients(app)
    for _ in range(5):
        assert await admin.call("ping") == "pong"
    metrics = await admin.call("get_metrics")
    assert list(metrics) == METRICS_KEYS
    assert all(is_number(v) for v in metrics.values()), metrics
    assert type(metrics["active_connections"]) is int
    assert type(metrics["total_requests"]) is int
    assert metrics["active_connections"] == 1
    assert metrics["total_requests"] == 7  # authenticate, 5 pings, this get_metrics
    assert metrics["error_rate"] == 0
    # Six responses were timed before this one: every time figure is measured and positive.
    assert 0 < metrics["average_response_time"] < 1000
    assert 0 < metrics["p50_response_time"] <= metrics["p99_response_time"] < 1000
    assert 1 < metrics["memory_usage"] < 4096  # MB
    assert metrics["cpu_usage"] >= 0
    assert 0 < metrics["uptime"] < 60


async def test_total_requests_counts_exactly(start_app, clients):
    app = await start_app()
    admin = await clients(app)
    before = (await admin.call("get_metrics"))["total_requests"]
    # 4 single requests, a batch of 3, one notification (no id: run, counted, not answered),
    # and an unknown method.
    await admin.call("ping")
    await admin.call("get_camera_list")
    await admin.call("get_status")
    await admin.call("get_server_info")
    await admin.batch([("ping", None), ("ping", None), ("get_camera_list", None)])
    await admin.notify("ping")
    await call_error(admin, "no_such_method")
    after = (await admin.call("get_metrics"))["total_requests"]
    # The get_metrics call counts itself: it is counted when it arrives, before it runs.
    assert after - before == 4 + 3 + 1 + 1 + 1
    again = (await admin.call("get_metrics"))["total_requests"]
    assert again - after == 1


async def test_requests_of_every_connection_are_counted(start_app, clients):
    app = await start_app()
    admin = await clients(app)
    viewer = await clients(app, "viewer")
    anonymous = await clients(app, None)
    before = (await admin.call("get_metrics"))["total_requests"]
    await viewer.call("ping")
    await call_error(anonymous, "ping")  # -32001 is a request too
    after = (await admin.call("get_metrics"))["total_requests"]
    assert after - before == 3


async def test_error_rate_reflects_errors(start_app, clients):
    app = await start_app()
    admin = await clients(app)  # 1 request
    for _ in range(3):
        await admin.call("ping")  # 3 requests
    assert (await call_error(admin, "no_such_method")).code == -32601
    err = await call_error(admin, "get_camera_status", {"device": "camera7"})
    assert err.code == -1000
    metrics = await admin.call("get_metrics")  # 1 request
    assert metrics["total_requests"] == 7
    assert metrics["error_rate"] == round(2 / 7, 6)

    anonymous = await clients(app, None)
    assert (await call_error(anonymous, "get_camera_list")).code == -32001
    viewer = await clients(app, "viewer")  # authenticate: 1 request
    assert (await call_error(viewer, "get_metrics")).code == -32003
    metrics = await admin.call("get_metrics")
    assert metrics["total_requests"] == 11
    assert metrics["error_rate"] == round(4 / 11, 6)


async def test_error_rate_is_zero_without_errors(start_app, clients):
    app = await start_app()
    admin = await clients(app)
    assert (await admin.call("get_metrics"))["error_rate"] == 0


async def test_active_connections_follow_open_clients(start_app, clients):
    app = await start_app()
    admin = await clients(app)
    assert (await admin.call("get_metrics"))["active_connections"] == 1
    others = [await clients(app, role) for role in (None, "viewer", "operator", None)]
    assert (await admin.call("get_metrics"))["active_connections"] == 5
    await others[0].close()
    await others[2].close()
    await wait_for_connections(app, 3)
    assert (await admin.call("get_metrics"))["active_connections"] == 3


# ---- get_status ----------------------------------------------------------------------------


async def test_status_healthy(start_app, clients):
    app = await start_app()
    admin = await clients(app)
    status = await admin.call("get_status")
    assert list(status) == STATUS_KEYS
    uptime = status.pop("uptime")
    assert is_number(uptime) and 0 < uptime < 60
    assert status == {
        "status": "healthy",
        "version": __version__,
        "components": {"websocket_server": "running", "camera_monitor": "running"},
    }
    assert list(status["components"]) == ["websocket_server", "camera_monitor"]


@pytest.mark.fuse
async def test_status_degraded_with_an_error_camera(start_app, fake_cameras, clients):
    fake_cameras.add("video0", fakecams.uvc_camera())
    fake_cameras.add("video1", fakecams.querycap_eio_camera())
    app = await start_app({"camera": {"device_dir": fake_cameras.dev_dir}})
    await app.monitor.wait_ready(10)
    admin = await clients(app)
    status = await admin.call("get_status")
    assert (status["status"], status["components"]) == (
        "degraded",
        {"websocket_server": "running", "camera_monitor": "running"},
    )

    # Unplugging the broken camera makes it healthy again.
    async with app.monitor.events() as events:
        fake_cameras.remove("video1")
        event = await asyncio.wait_for(events.__anext__(), 10)
    assert event.kind == "DISCONNECTED"
    assert (await admin.call("get_status"))["status"] == "healthy"


async def test_status_unhealthy_when_the_monitor_stopped(start_app, clients):
    app = await start_app()
    admin = await clients(app)
    await app.monitor.stop()
    status = await admin.call("get_status")
    assert (status["status"], status["components"]) == (
        "unhealthy",
        {"websocket_server": "running", "camera_monitor": "stopped"},
    )


# ---- get_server_info -----------------------------------------------------------------------


async def test_server_info_defaults(start_app, clients):
    app = await start_app()
    admin = await clients(app)
    info = await admin.call("get_server_info")
    assert list(info) == INFO_KEYS
    assert info == {
        "name": "Camera Service",
        "version": __version__,
        "capabilities": CAPABILITIES,
        "supported_formats": [],
        "max_cameras": 256,
        "max_connections": 1000,
    }


@pytest.mark.fuse
async def test_server_info_reflects_config_and_cameras(start_app, fake_cameras, clients):
    fake_cameras.add("video0", fakecams.uvc_camera())
    fake_cameras.add("video1", fakecams.metadata_node())
    fake_cameras.add("video2", fakecams.mplane_camera())
    fake_cameras.add("video3", fakecams.fractional_camera())
    app = await start_app(
        {
            "camera": {"device_dir": fake_cameras.dev_dir, "device_range": [0, 1, 2, 3, 4]},
            "server": {"max_connections": 40},
        }
    )
    await app.monitor.wait_ready(10)
    admin = await clients(app)
    info = await admin.call("get_server_info")
    assert info == {
        "name": "Camera Service",
        "version": __version__,
        "capabilities": CAPABILITIES,
        # Every format of the cameras, first-seen order, no duplicates.
        "supported_formats": ["YUYV", "MJPG", "NV12", "YU12"],
        "max_cameras": 5,
        "max_connections": 40,
    }


# ---- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get_metrics", "get_status", "get_server_info"])
@pytest.mark.parametrize("role", ["viewer", "operator"])
async def test_admin_methods_refuse_lower_roles(start_app, clients, method, role):
    app = await start_app()
    client = await clients(app, role)
    err = await call_error(client, method)
    assert (err.code, err.message) == (-32003, "Insufficient permissions")
    assert (err.data["required_role"], err.data["role"]) == ("admin", role)


@pytest.mark.parametrize("method", ["get_metrics", "get_status", "get_server_info"])
async def test_admin_methods_need_a_session(start_app, clients, method):
    app = await start_app()
    client = await clients(app, None)
    err = await call_error(client, method)
    assert (err.code, err.message) == (-32001, "Authentication required")


async def test_admin_per_request_token_on_a_viewer_connection(start_app, clients):
    app = await start_app()
    viewer = await clients(app, "viewer")
    metrics = await viewer.call("get_metrics", {"auth_token": mint_token("admin")})
    assert list(metrics) == METRICS_KEYS
    # The viewer session stays a viewer session.
    assert (await call_error(viewer, "get_metrics")).code == -32003
