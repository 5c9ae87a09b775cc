"""camera_status_update notifications end to end (PROTOCOL 6, 1 "Ordering", 9.9, 9.10): a real
server on the FUSE fake cameras, plugs and unplugs through the mount, real WebSocket clients."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from conftest import RawClient, mint_token, ws_url

from camera_service.client import RpcClient
from camera_service.testing import fakecams

pytestmark = pytest.mark.fuse

METHOD = "camera_status_update"
PARAM_KEYS = ["device", "status", "name", "resolution", "fps", "streams"]
# After the last expected notification, how long we listen for anything more.
QUIET = 0.3


def streams(
    n: int, host: str = "localhost", rtsp: int = 8554, webrtc: int = 8889, hls: int = 8888
) -> dict[str, str]:
    return {
        "rtsp": f"rtsp://{host}:{rtsp}/camera{n}",
        "webrtc": f"http://{host}:{webrtc}/camera{n}/webrtc",
        "hls": f"http://{host}:{hls}/camera{n}",
    }


def uvc_params(dev: str, n: int, status: str = "CONNECTED", **stream_kw) -> dict:
    return {
        "device": f"{dev}/video{n}",
        "status": status,
        "name": "Fake USB Camera",
        "resolution": "640x480",
        "fps": 30,
        "streams": {} if status == "DISCONNECTED" else streams(n, **stream_kw),
    }


def note(params: dict) -> dict:
    return {"jsonrpc": "2.0", "method": METHOD, "params": params}


def assert_note(message: dict, params: dict) -> None:
    assert message == note(params)
    assert list(message) == ["jsonrpc", "method", "params"]
    assert list(message["params"]) == PARAM_KEYS
    assert type(message["params"]["fps"]) is type(params["fps"])


@pytest.fixture
async def clients():
    opened: list[RpcClient] = []

    async def open_clients(app, count: int = 1, role: str | None = "viewer", ttl: float = 3600):
        async def one(i: int) -> RpcClient:
            client = await RpcClient.connect(ws_url(app))
            opened.append(client)
            if role is not None:
                await client.authenticate(mint_token(role, user=f"{role}-{i}", ttl=ttl))
            return client

        return list(await asyncio.gather(*(one(i) for i in range(count))))

    yield open_clients
    await asyncio.gather(*(asyncio.wait_for(c.close(), 2) for c in opened), return_exceptions=True)


async def start_on_fuse(start_app, fake_cameras, extra=None):
    app = await start_app({"camera": {"device_dir": fake_cameras.dev_dir}, **(extra or {})})
    await app.monitor.wait_ready(10)
    return app


async def next_notes(client: RpcClient, count: int, timeout: float = 10.0) -> list[dict]:
    return [await client.next_notification(timeout) for _ in range(count)]


async def assert_quiet(*clients: RpcClient, seconds: float = QUIET) -> None:
    await asyncio.sleep(seconds)
    assert [c.pending_notifications() for c in clients] == [0] * len(clients)


# ---- fan-out -------------------------------------------------------------------------------


async def test_plug_and_unplug_reach_every_authenticated_client(start_app, fake_cameras, clients):
    app = await start_on_fuse(start_app, fake_cameras)
    dev = fake_cameras.dev_dir
    authed = (
        await clients(app, 20, "viewer")
        + await clients(app, 20, "operator")
        + await clients(app, 10, "admin")
    )
    anonymous = await clients(app, 5, role=None)
    assert len(app.table) == 55

    fake_cameras.add("video0", fakecams.uvc_camera())
    firsts = await asyncio.gather(*(c.next_notification(10) for c in authed))
    for message in firsts:
        assert_note(message, uvc_params(dev, 0))
    await assert_quiet(*authed, *anonymous)

    fake_cameras.remove("video0")
    gone = await asyncio.gather(*(c.next_notification(10) for c in authed))
    for message in gone:
        assert_note(message, uvc_params(dev, 0, "DISCONNECTED"))
    await assert_quiet(*authed, *anonymous)

    # The anonymous ones were connected all along and can still talk: they just got nothing.
    for client in anonymous:
        assert client.pending_notifications() == 0
        assert not client.closed.is_set()


async def test_client_authenticating_later_starts_receiving(start_app, fake_cameras, clients):
    app = await start_on_fuse(start_app, fake_cameras)
    dev = fake_cameras.dev_dir
    [late] = await clients(app, role=None)
    fake_cameras.add("video0", fakecams.uvc_camera())
    [watcher] = await clients(app)
    await watcher.next_notification(10)
    await assert_quiet(late)

    await late.authenticate(mint_token("viewer"))
    fake_cameras.remove("video0")
    assert_note(await late.next_notification(10), uvc_params(dev, 0, "DISCONNECTED"))


async def test_expired_session_gets_no_notifications(start_app, fake_cameras, clients):
    app = await start_on_fuse(start_app, fake_cameras)
    # exp has a one-second resolution: mint early in a second, then wait until it has passed.
    if time.time() % 1 > 0.5:
        await asyncio.sleep(1.01 - time.time() % 1)
    expires = int(time.time()) + 1
    [expiring] = await clients(app, ttl=1)
    [steady] = await clients(app)
    await asyncio.sleep(expires + 0.05 - time.time())
    fake_cameras.add("video0", fakecams.uvc_camera())
    await steady.next_notification(10)
    await assert_quiet(expiring)


async def test_cameras_present_at_startup_are_not_announced(start_app, fake_cameras, clients):
    dev = fake_cameras.dev_dir
    fake_cameras.add("video0", fakecams.uvc_camera())
    fake_cameras.add("video2", fakecams.querycap_eio_camera())
    # This one keeps the first scan busy for a second, so the clients are surely
    # authenticated before any start-up camera has been registered.
    fake_cameras.add("video1", fakecams.hanging_camera(seconds=1.0))
    app = await start_app({"camera": {"device_dir": dev, "probe_timeout": 3}})
    listeners = await clients(app, 3)
    assert not app.monitor.first_scan_done
    await app.monitor.wait_ready(10)
    listed = await listeners[0].call("get_camera_list")
    assert [(c["device"], c["status"]) for c in listed["cameras"]] == [
        (f"{dev}/video0", "CONNECTED"),
        (f"{dev}/video1", "CONNECTED"),
        (f"{dev}/video2", "ERROR"),
    ]
    await assert_quiet(*listeners)

    # Silence was not deafness: a camera plugged now is announced.
    fake_cameras.add("video3", fakecams.uvc_camera())
    for client in listeners:
        assert_note(await client.next_notification(10), uvc_params(dev, 3))


# ---- one notification per change ------------------------------------------------------------


async def test_each_physical_change_gives_exactly_one_notification(
    start_app, fake_cameras, clients
):
    app = await start_on_fuse(start_app, fake_cameras)
    dev = fake_cameras.dev_dir
    listeners = await clients(app, 3)
    for _ in range(3):
        fake_cameras.add("video0", fakecams.uvc_camera())  # IN_CREATE + IN_ATTRIB
        for client in listeners:
            assert_note(await client.next_notification(10), uvc_params(dev, 0))
        # udev-style permission fixes on a working camera say nothing new.
        fake_cameras.chmod("video0", 0o660)
        fake_cameras.chmod("video0", 0o666)
        await assert_quiet(*listeners, seconds=0.15)
        fake_cameras.remove("video0")
        for client in listeners:
            assert_note(await client.next_notification(10), uvc_params(dev, 0, "DISCONNECTED"))
    await assert_quiet(*listeners)


async def test_burst_in_one_batch_is_announced_once(start_app, fake_cameras, clients):
    """Plug/unplug/plug/... with no chance for the server to look in between: it can only see
    the end state, which is announced once."""
    app = await start_on_fuse(start_app, fake_cameras)
    dev = fake_cameras.dev_dir
    listeners = await clients(app, 3)
    spec = fakecams.uvc_camera()
    for _ in range(5):
        fake_cameras.add("video0", spec)
        fake_cameras.remove("video0")
    fake_cameras.add("video0", spec)
    for client in listeners:
        assert_note(await client.next_notification(10), uvc_params(dev, 0))
    await assert_quiet(*listeners)

    # Unplug then plug back within one batch: both changes are real and both are told.
    other = fakecams.fractional_camera()
    fake_cameras.remove("video0")
    fake_cameras.add("video0", other)
    expected_new = {
        "device": f"{dev}/video0",
        "status": "CONNECTED",
        "name": "Fake Slow Camera",
        "resolution": "1280x960",
        "fps": 7.5,
        "streams": streams(0),
    }
    for client in listeners:
        first, second = await next_notes(client, 2)
        assert_note(first, uvc_params(dev, 0, "DISCONNECTED"))
        assert_note(second, expected_new)
    await assert_quiet(*listeners)


async def test_rapid_changes_never_duplicate_and_end_consistent(start_app, fake_cameras, clients):
    """Plug/unplug with tiny pauses: the server may miss a short-lived camera, but what it says
    alternates CONNECTED/DISCONNECTED, is the same for every client, and ends in the real state."""
    app = await start_on_fuse(start_app, fake_cameras)
    listeners = await clients(app, 3)
    spec = fakecams.uvc_camera()
    changes = 0
    for pause in (0, 0.001, 0.003, 0.01, 0.02, 0.0, 0.005, 0.03):
        fake_cameras.add("video0", spec)
        await asyncio.sleep(pause)
        fake_cameras.remove("video0")
        await asyncio.sleep(pause)
        changes += 2
    fake_cameras.add("video0", spec)
    changes += 1
    # Probes take milliseconds: after a second everything the server will say has been said.
    await asyncio.sleep(1.0)
    seen = [
        [m["params"]["status"] for m in await next_notes(c, c.pending_notifications(), 1)]
        for c in listeners
    ]
    await assert_quiet(*listeners)
    assert seen[0] == seen[1] == seen[2]
    assert 1 <= len(seen[0]) <= changes
    assert seen[0] == ["CONNECTED", "DISCONNECTED"] * (len(seen[0]) // 2) + ["CONNECTED"]


async def test_metadata_node_is_never_announced(start_app, fake_cameras, clients):
    app = await start_on_fuse(start_app, fake_cameras)
    listeners = await clients(app, 2)
    fake_cameras.add("video1", fakecams.metadata_node())
    await assert_quiet(*listeners)
    fake_cameras.remove("video1")
    await assert_quiet(*listeners)


async def test_error_status_and_recovery_are_announced(start_app, fake_cameras, clients):
    app = await start_on_fuse(start_app, fake_cameras)
    dev = fake_cameras.dev_dir
    listeners = await clients(app, 2)
    broken = {
        "device": f"{dev}/video4",
        "status": "ERROR",
        "name": "Camera 4",
        "resolution": "",
        "fps": 0,
        "streams": streams(4),
    }
    fake_cameras.add("video4", fakecams.querycap_eio_camera())
    for client in listeners:
        assert_note(await client.next_notification(10), broken)
    await assert_quiet(*listeners)

    # Firmware fixed; udev touches the node: the camera comes back with its real details.
    fake_cameras.set_faults("video4", {})
    fake_cameras.chmod("video4", 0o666)
    # That spec offers no formats at all: the card name is known now, sizes and rates are not.
    fixed = {
        "device": f"{dev}/video4",
        "status": "CONNECTED",
        "name": "Fake Broken Camera",
        "resolution": "",
        "fps": 0,
        "streams": streams(4),
    }
    for client in listeners:
        assert_note(await client.next_notification(10), fixed)
    await assert_quiet(*listeners)

    fake_cameras.remove("video4")
    for client in listeners:
        assert_note(
            await client.next_notification(10), {**fixed, "status": "DISCONNECTED", "streams": {}}
        )


async def test_unplugging_an_error_camera_is_announced(start_app, fake_cameras, clients):
    app = await start_on_fuse(start_app, fake_cameras)
    dev = fake_cameras.dev_dir
    [client] = await clients(app)
    fake_cameras.add("video7", fakecams.querycap_eio_camera())
    assert (await client.next_notification(10))["params"]["status"] == "ERROR"
    fake_cameras.remove("video7")
    assert_note(
        await client.next_notification(10),
        {
            "device": f"{dev}/video7",
            "status": "DISCONNECTED",
            "name": "Camera 7",
            "resolution": "",
            "fps": 0,
            "streams": {},
        },
    )


# ---- ordering and URLs ---------------------------------------------------------------------


async def test_response_to_a_request_sent_before_a_plug_comes_first(start_app, fake_cameras):
    app = await start_on_fuse(start_app, fake_cameras)
    dev = fake_cameras.dev_dir
    raw = await RawClient.open(ws_url(app))
    try:
        reply = await raw.request(
            {
                "jsonrpc": "2.0",
                "method": "authenticate",
                "id": 0,
                "params": {"auth_token": mint_token("viewer")},
            }
        )
        assert reply["result"]["authenticated"] is True
        for n in range(3):
            raw.send(orjson.dumps({"jsonrpc": "2.0", "method": "get_camera_list", "id": n + 1}))
            fake_cameras.add(f"video{n}", fakecams.uvc_camera())
            first = await raw.recv_json()
            assert first["id"] == n + 1 and "result" in first
            # The list answered is the one from before the plug.
            assert first["result"]["total"] == n
            second = await raw.recv_json()
            assert_note(second, uvc_params(dev, n))
        await raw.expect_silence(QUIET)
    finally:
        await raw.close()


async def test_notification_urls_follow_media_config(start_app, fake_cameras, clients):
    app = await start_on_fuse(
        start_app, fake_cameras, {"media": {"host": "cams.example", "rtsp_port": 1554}}
    )
    dev = fake_cameras.dev_dir
    [client] = await clients(app)
    fake_cameras.add("video2", fakecams.uvc_camera())
    message = await client.next_notification(10)
    expected_urls = streams(2, host="cams.example", rtsp=1554)
    assert expected_urls == {
        "rtsp": "rtsp://cams.example:1554/camera2",
        "webrtc": "http://cams.example:8889/camera2/webrtc",
        "hls": "http://cams.example:8888/camera2",
    }
    assert_note(message, uvc_params(dev, 2, host="cams.example", rtsp=1554))
    listed = await client.call("get_camera_list")
    assert listed["cameras"][0]["streams"] == message["params"]["streams"] == expected_urls
    status = await client.call("get_camera_status", {"device": "camera2"})
    assert status["streams"] == expected_urls


async def test_slow_and_failing_bus_subscribers_do_not_delay_notifications(
    start_app, fake_cameras, clients
):
    """Other subscribers of the same event bus (later: recorder, MQTT bridge) may hang or
    raise; the WebSocket notifier still delivers at once and the service keeps working."""
    from camera_service.core.events import CameraChanged

    app = await start_on_fuse(start_app, fake_cameras)
    (client,) = await clients(app)
    release = asyncio.Event()
    slow_calls: list[str] = []

    async def slow(event: CameraChanged) -> None:
        slow_calls.append(event.kind)
        await release.wait()

    def failing(event: CameraChanged) -> None:
        raise RuntimeError("a broken subscriber")

    app.bus.subscribe(CameraChanged, slow)
    app.bus.subscribe(CameraChanged, failing)
    dev = fake_cameras.dev_dir
    started = time.monotonic()
    fake_cameras.add("video3", fakecams.uvc_camera())
    (first,) = await next_notes(client, 1, timeout=3)
    fake_cameras.remove("video3")
    (second,) = await next_notes(client, 1, timeout=3)
    assert time.monotonic() - started < 3
    assert_note(first, uvc_params(dev, 3))
    assert_note(second, uvc_params(dev, 3, "DISCONNECTED"))
    assert slow_calls == ["CONNECTED"]  # still stuck in the first event
    assert await client.call("ping") == "pong"
    release.set()
