"""get_camera_list / get_camera_status / get_camera_capabilities end to end (PROTOCOL 5.2-5.4):
a real server watching the FUSE fake cameras, real WebSocket clients, exact JSON compared.

Every expected dict is written out by hand from the spec factories in
camera_service/testing/fakecams.py, never computed by the product code.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from conftest import RawClient, mint_token, ws_url

from camera_service.client import RpcCallError, RpcClient
from camera_service.testing import fakecams

pytestmark = pytest.mark.fuse

KEYS_LIST_ENTRY = [
    "device",
    "status",
    "name",
    "resolution",
    "fps",
    "streams",
    "recording",
    "recording_session",
    "current_file",
    "elapsed_time",
]
# The recording fields of a camera that does not record (PROTOCOL 5.16, end).
NOT_RECORDING = {
    "recording": False,
    "recording_session": None,
    "current_file": None,
    "elapsed_time": 0,
}
KEYS_STATUS = KEYS_LIST_ENTRY + ["capabilities", "device_info", "metrics"]
KEYS_CAPS = ["device", "formats", "resolutions", "fps_options", "validation_status"]


def streams(
    n: int, host: str = "localhost", rtsp: int = 8554, webrtc: int = 8889, hls: int = 8888
) -> dict[str, str]:
    return {
        "rtsp": f"rtsp://{host}:{rtsp}/camera{n}",
        "webrtc": f"http://{host}:{webrtc}/camera{n}/webrtc",
        "hls": f"http://{host}:{hls}/camera{n}",
    }


def key_orders(value):
    """Every object's key order, recursively: 'byte-exact after decoding' includes the order."""
    if isinstance(value, dict):
        return [list(value), {k: key_orders(v) for k, v in value.items()}]
    if isinstance(value, list):
        return [key_orders(v) for v in value]
    return type(value).__name__


def assert_exact(actual, expected):
    assert actual == expected
    # == does not see key order, nor 30 vs 30.0: compare both explicitly.
    assert key_orders(actual) == key_orders(expected)


# ---- the cameras, as the specs define them -----------------------------------------------

# node -> factory; video1 is the metadata node of the UVC camera at video0.
SPECS = {
    "video0": fakecams.uvc_camera,
    "video1": fakecams.metadata_node,
    "video2": fakecams.stepwise_camera,
    "video3": fakecams.fractional_camera,
    "video4": fakecams.mplane_camera,
    "video5": fakecams.querycap_eio_camera,
    "video6": fakecams.legacy_caps_camera,
}


def expected_cameras(dev: str) -> dict[int, dict]:
    """number -> {entry, capabilities, device_info, caps_result}, written from the specs."""
    cameras = _expected_cameras(dev)
    for cam in cameras.values():
        cam["entry"].update(NOT_RECORDING)
    return cameras


def _expected_cameras(dev: str) -> dict[int, dict]:
    return {
        0: {
            "entry": {
                "device": f"{dev}/video0",
                "status": "CONNECTED",
                "name": "Fake USB Camera",
                "resolution": "640x480",
                "fps": 30,
                "streams": streams(0),
            },
            # YUYV then MJPG (driver order); sizes of both formats, largest first, no duplicates;
            # rates of the current size (640x480) in the current format (YUYV).
            "capabilities": {
                "formats": ["YUYV", "MJPG"],
                "resolutions": ["1920x1080", "1280x720", "640x480", "320x240"],
                "frame_rates": [30, 15],
            },
            "device_info": {
                "driver": "uvcvideo",
                "card": "Fake USB Camera",
                "bus_info": "usb-0000:00:14.0-1",
                "driver_version": "6.1.0",
            },
            "fps_options": [30, 15, 10, 5],
            "validation_status": "confirmed",
        },
        2: {
            # No current format / no G_PARM: the largest size offered and its highest rate.
            # Stepwise 320..1920 x 240..1080 step 8: the maximum, then the standard sizes on the
            # grid. Interval range 1/30..1/5 s step 1/30: 30, 15, 10, 7.5, 5 (6 is no standard).
            "entry": {
                "device": f"{dev}/video2",
                "status": "CONNECTED",
                "name": "Fake Stepwise Camera",
                "resolution": "1920x1080",
                "fps": 30,
                "streams": streams(2),
            },
            "capabilities": {
                "formats": ["NV12"],
                "resolutions": [
                    "1920x1080",
                    "1280x960",
                    "1280x720",
                    "1024x768",
                    "800x600",
                    "640x480",
                    "640x360",
                    "352x288",
                    "320x240",
                ],
                "frame_rates": [30, 15, 10, 7.5, 5],
            },
            "device_info": {
                "driver": "fakestep",
                "card": "Fake Stepwise Camera",
                "bus_info": "platform:fakestep.0",
                "driver_version": "6.6.12",
            },
            "fps_options": [30, 15, 10, 7.5, 5],
            "validation_status": "confirmed",
        },
        3: {
            # timeperframe 2/15 s: 7.5 fps, a float.
            "entry": {
                "device": f"{dev}/video3",
                "status": "CONNECTED",
                "name": "Fake Slow Camera",
                "resolution": "1280x960",
                "fps": 7.5,
                "streams": streams(3),
            },
            "capabilities": {
                "formats": ["YUYV"],
                "resolutions": ["1280x960", "640x480"],
                "frame_rates": [15, 7.5],
            },
            "device_info": {
                "driver": "uvcvideo",
                "card": "Fake Slow Camera",
                "bus_info": "usb-0000:00:14.0-3",
                "driver_version": "6.1.0",
            },
            "fps_options": [15, 7.5],
            "validation_status": "confirmed",
        },
        4: {
            # Multi-planar, no G_PARM: the highest rate of NV12 at 1920x1080.
            "entry": {
                "device": f"{dev}/video4",
                "status": "CONNECTED",
                "name": "Fake ISP Camera",
                "resolution": "1920x1080",
                "fps": 60,
                "streams": streams(4),
            },
            "capabilities": {
                "formats": ["NV12", "YU12"],
                "resolutions": ["1920x1080", "1280x720"],
                "frame_rates": [60, 30],
            },
            "device_info": {
                "driver": "fakeisp",
                "card": "Fake ISP Camera",
                "bus_info": "platform:fakeisp.0",
                "driver_version": "6.1.55",
            },
            "fps_options": [60, 30],
            "validation_status": "confirmed",
        },
        5: {
            # QUERYCAP answers EIO: listed, ERROR, nothing known but the number.
            "entry": {
                "device": f"{dev}/video5",
                "status": "ERROR",
                "name": "Camera 5",
                "resolution": "",
                "fps": 0,
                "streams": streams(5),
            },
            "capabilities": {"formats": [], "resolutions": [], "frame_rates": []},
            "device_info": {"driver": "", "card": "", "bus_info": "", "driver_version": ""},
            "fps_options": [],
            "validation_status": "disconnected",
        },
        6: {
            # An old driver without DEVICE_CAPS: `capabilities` describes the node.
            "entry": {
                "device": f"{dev}/video6",
                "status": "CONNECTED",
                "name": "Fake Legacy Camera",
                "resolution": "752x480",
                "fps": 60,
                "streams": streams(6),
            },
            "capabilities": {"formats": ["GREY"], "resolutions": ["752x480"], "frame_rates": [60]},
            "device_info": {
                "driver": "fakelegacy",
                "card": "Fake Legacy Camera",
                "bus_info": "pci:0000:00:05.0",
                "driver_version": "4.19.200",
            },
            "fps_options": [60],
            "validation_status": "confirmed",
        },
    }


def expected_status(cam: dict) -> dict:
    return {**cam["entry"], "capabilities": cam["capabilities"], "device_info": cam["device_info"]}


def expected_caps(cam: dict) -> dict:
    return {
        "device": cam["entry"]["device"],
        "formats": cam["capabilities"]["formats"],
        "resolutions": cam["capabilities"]["resolutions"],
        "fps_options": cam["fps_options"],
        "validation_status": cam["validation_status"],
    }


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture
async def clients():
    opened: list = []

    async def open_client(app, role: str | None = "viewer") -> RpcClient:
        client = await RpcClient.connect(ws_url(app))
        opened.append(client)
        if role is not None:
            await client.authenticate(mint_token(role, user=f"{role}-user"))
        return client

    yield open_client
    for client in opened:
        try:
            await asyncio.wait_for(client.close(), 2)
        except Exception:
            pass


async def start_on_fuse(start_app, fake_cameras, extra=None):
    app = await start_app({"camera": {"device_dir": fake_cameras.dev_dir}, **(extra or {})})
    await app.monitor.wait_ready(10)
    return app


@pytest.fixture
async def all_specs_app(start_app, fake_cameras):
    for name, factory in SPECS.items():
        fake_cameras.add(name, factory())
    return await start_on_fuse(start_app, fake_cameras)


async def call_error(client: RpcClient, method: str, params) -> RpcCallError:
    with pytest.raises(RpcCallError) as info:
        await client.call(method, params)
    return info.value


async def plugged(app, action, count: int = 1, timeout: float = 10.0) -> list:
    """Run `action()` (a plug or unplug) and return the next `count` monitor events."""
    events = []
    async with app.monitor.events() as stream:
        action()

        async def collect():
            async for event in stream:
                events.append(event)
                if len(events) == count:
                    return

        await asyncio.wait_for(collect(), timeout)
    return events


# ---- get_camera_list -----------------------------------------------------------------------


async def test_camera_list_every_spec(all_specs_app, fake_cameras, clients):
    client = await clients(all_specs_app)
    expected = expected_cameras(fake_cameras.dev_dir)
    result = await client.call("get_camera_list")
    assert_exact(
        result,
        {
            # The metadata node (video1) is no camera; the EIO node is listed as ERROR.
            "cameras": [expected[n]["entry"] for n in (0, 2, 3, 4, 5, 6)],
            "total": 6,
            "connected": 5,
        },
    )
    # Whole rates are JSON integers, 7.5 stays a float, on the wire.
    raw = await RawClient.open(ws_url(all_specs_app))
    try:
        await raw.request(
            {
                "jsonrpc": "2.0",
                "method": "authenticate",
                "id": 0,
                "params": {"auth_token": mint_token("viewer")},
            }
        )
        raw.send(b'{"jsonrpc":"2.0","method":"get_camera_list","id":1}')
        data = await raw.recv()
    finally:
        await raw.close()
    assert data.count(b'"fps":30,') == 2 and data.count(b'"fps":60,') == 2
    assert b'"fps":7.5,' in data and b'"fps":0,' in data
    assert b'"fps":30.0' not in data


@pytest.mark.parametrize("number", [0, 2, 3, 4, 5, 6])
async def test_camera_status_and_capabilities_per_spec(
    all_specs_app, fake_cameras, clients, number
):
    client = await clients(all_specs_app)
    cam = expected_cameras(fake_cameras.dev_dir)[number]
    device = f"{fake_cameras.dev_dir}/video{number}"
    for address in (device, f"camera{number}"):
        status = await client.call("get_camera_status", {"device": address})
        assert list(status) == KEYS_STATUS
        metrics = status.pop("metrics")
        assert list(metrics) == ["uptime"]
        assert type(metrics["uptime"]) in (int, float) and 0 <= metrics["uptime"] < 60
        assert_exact(status, expected_status(cam))

        caps = await client.call("get_camera_capabilities", {"device": address})
        assert list(caps) == KEYS_CAPS
        assert_exact(caps, expected_caps(cam))


async def test_metadata_node_alone_is_not_a_camera(start_app, fake_cameras, clients):
    fake_cameras.add("video1", fakecams.metadata_node())
    app = await start_on_fuse(start_app, fake_cameras)
    client = await clients(app)
    assert_exact(await client.call("get_camera_list"), {"cameras": [], "total": 0, "connected": 0})
    for device in (f"{fake_cameras.dev_dir}/video1", "camera1"):
        for method in ("get_camera_status", "get_camera_capabilities"):
            err = await call_error(client, method, {"device": device})
            assert (err.code, err.message, err.data["device"]) == (
                -1000,
                "Camera not found",
                device,
            )


async def test_card_name_fallback(start_app, fake_cameras, clients):
    fake_cameras.add("video3", fakecams.uvc_camera(card=""))
    app = await start_on_fuse(start_app, fake_cameras)
    client = await clients(app)
    expected = {
        **expected_cameras(fake_cameras.dev_dir)[0]["entry"],
        "device": f"{fake_cameras.dev_dir}/video3",
        "name": "Camera 3",
        "streams": streams(3),
    }
    assert_exact(
        await client.call("get_camera_list"), {"cameras": [expected], "total": 1, "connected": 1}
    )
    status = await client.call("get_camera_status", {"device": "camera3"})
    assert (status["name"], status["device_info"]["card"]) == ("Camera 3", "")


async def test_camera_uptime_counts_from_detection(start_app, fake_cameras, clients):
    fake_cameras.add("video0", fakecams.uvc_camera())
    app = await start_on_fuse(start_app, fake_cameras)
    client = await clients(app)
    first = (await client.call("get_camera_status", {"device": "camera0"}))["metrics"]["uptime"]
    await asyncio.sleep(0.3)
    second = (await client.call("get_camera_status", {"device": "camera0"}))["metrics"]["uptime"]
    assert 0.25 <= second - first <= 1.0


# ---- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get_camera_status", "get_camera_capabilities"])
async def test_unknown_devices(all_specs_app, fake_cameras, clients, method):
    client = await clients(all_specs_app)
    dev = fake_cameras.dev_dir
    unknown = [
        f"{dev}/video9",  # never seen
        f"{dev}/video1",  # a metadata node, not a camera
        "camera9",
        "/dev/video0",  # not under the configured device directory
        "video0",
        "camera00",  # not the stream name of video0
        "camera",
        "",
        f"{dev}/video0/",
    ]
    for device in unknown:
        err = await call_error(client, method, {"device": device})
        assert (err.code, err.message) == (-1000, "Camera not found"), device
        assert err.data["device"] == device
        assert isinstance(err.data["reason"], str) and err.data["reason"]


@pytest.mark.parametrize("method", ["get_camera_status", "get_camera_capabilities"])
async def test_superscript_digit_stream_name_is_not_found(all_specs_app, clients, method):
    client = await clients(all_specs_app)
    err = await call_error(client, method, {"device": "camera\u00b2"})
    assert (err.code, err.message, err.data["device"]) == (
        -1000,
        "Camera not found",
        "camera\u00b2",
    )


@pytest.mark.parametrize("device", ["camera\u0660", "camera\u0662"], ids=["ar0", "ar2"])
async def test_non_ascii_digit_stream_name_is_not_found(all_specs_app, clients, device):
    client = await clients(all_specs_app)
    err = await call_error(client, "get_camera_status", {"device": device})
    assert (err.code, err.data["device"]) == (-1000, device)


@pytest.mark.parametrize("method", ["get_camera_status", "get_camera_capabilities"])
@pytest.mark.parametrize(
    "params", [{}, {"device": None}, {"dev": "camera0"}], ids=["missing", "null", "misspelled"]
)
async def test_missing_device_is_invalid_params(all_specs_app, clients, method, params):
    client = await clients(all_specs_app)
    err = await call_error(client, method, params)
    assert (err.code, err.message) == (-32602, "Invalid parameters")
    assert "device" in err.data["reason"]


@pytest.mark.parametrize("method", ["get_camera_status", "get_camera_capabilities"])
@pytest.mark.parametrize(
    "device",
    [0, 5, ["camera0"], {"device": "camera0"}, True, 1.5],
    ids=["int0", "int5", "list", "object", "bool", "float"],
)
async def test_non_string_device_is_invalid_params(all_specs_app, clients, method, device):
    client = await clients(all_specs_app)
    err = await call_error(client, method, {"device": device})
    assert (err.code, err.message) == (-32602, "Invalid parameters")
    assert "device" in err.data["reason"]


async def test_positional_params_are_invalid(all_specs_app, clients):
    client = await clients(all_specs_app)
    err = await call_error(client, "get_camera_status", ["camera0"])
    assert (err.code, err.message) == (-32602, "Invalid parameters")


async def test_extra_params_are_ignored(all_specs_app, fake_cameras, clients):
    client = await clients(all_specs_app)
    cam = expected_cameras(fake_cameras.dev_dir)[0]
    caps = await client.call("get_camera_capabilities", {"device": "camera0", "verbose": True})
    assert_exact(caps, expected_caps(cam))
    listed = await client.call("get_camera_list", {"anything": 1})
    assert listed["total"] == 6


@pytest.mark.parametrize(
    "method", ["get_camera_list", "get_camera_status", "get_camera_capabilities"]
)
async def test_camera_methods_need_a_session(all_specs_app, clients, method):
    client = await clients(all_specs_app, role=None)
    err = await call_error(client, method, {"device": "camera0"})
    assert (err.code, err.message) == (-32001, "Authentication required")


# ---- hot-plug and the cached list ----------------------------------------------------------


async def test_list_json_is_cached_until_a_change(start_app, fake_cameras, clients):
    fake_cameras.add("video0", fakecams.uvc_camera())
    app = await start_on_fuse(start_app, fake_cameras)
    api = app.camera_api
    client = await clients(app)
    dev = fake_cameras.dev_dir

    first = api.get_camera_list(None, {})
    assert api.get_camera_list(None, {}) is first
    assert_exact(
        orjson.loads(first.json),
        {"cameras": [expected_cameras(dev)[0]["entry"]], "total": 1, "connected": 1},
    )
    # Served over the socket and to other calls, it stays the same object.
    await client.call("get_camera_list")
    await client.call("get_camera_status", {"device": "camera0"})
    assert api.get_camera_list(None, {}) is first

    events = await plugged(app, lambda: fake_cameras.add("video3", fakecams.fractional_camera()))
    assert [(e.kind, e.camera.device) for e in events] == [("CONNECTED", f"{dev}/video3")]
    second = api.get_camera_list(None, {})
    assert second is not first
    assert api.get_camera_list(None, {}) is second
    expected = {
        "cameras": [expected_cameras(dev)[0]["entry"], expected_cameras(dev)[3]["entry"]],
        "total": 2,
        "connected": 2,
    }
    assert_exact(orjson.loads(second.json), expected)
    assert_exact(await client.call("get_camera_list"), expected)

    await plugged(app, lambda: fake_cameras.remove("video0"))
    third = api.get_camera_list(None, {})
    assert third is not second
    expected = {"cameras": [expected_cameras(dev)[3]["entry"]], "total": 1, "connected": 1}
    assert_exact(await client.call("get_camera_list"), expected)
    # A removed camera is unknown again, under both of its names.
    for device in (f"{dev}/video0", "camera0"):
        err = await call_error(client, "get_camera_status", {"device": device})
        assert (err.code, err.data["device"]) == (-1000, device)


async def test_hotplugged_cameras_match_startup_ones(start_app, fake_cameras, clients):
    app = await start_on_fuse(start_app, fake_cameras)
    client = await clients(app)
    assert_exact(await client.call("get_camera_list"), {"cameras": [], "total": 0, "connected": 0})

    def plug_all():
        for name, factory in SPECS.items():
            fake_cameras.add(name, factory())

    # Six cameras (the metadata node gives no event).
    await plugged(app, plug_all, count=6)
    expected = expected_cameras(fake_cameras.dev_dir)
    assert_exact(
        await client.call("get_camera_list"),
        {"cameras": [expected[n]["entry"] for n in (0, 2, 3, 4, 5, 6)], "total": 6, "connected": 5},
    )
    for n in (0, 2, 3, 4, 5, 6):
        status = await client.call("get_camera_status", {"device": f"camera{n}"})
        status.pop("metrics")
        assert_exact(status, expected_status(expected[n]))
        assert_exact(
            await client.call("get_camera_capabilities", {"device": f"camera{n}"}),
            expected_caps(expected[n]),
        )


async def test_stream_urls_follow_media_config(start_app, fake_cameras, clients):
    fake_cameras.add("video3", fakecams.fractional_camera())
    app = await start_on_fuse(
        start_app,
        fake_cameras,
        {
            "media": {
                "host": "cams.example",
                "rtsp_port": 1554,
                "webrtc_port": 1889,
                "hls_port": 1888,
            }
        },
    )
    client = await clients(app)
    urls = streams(3, "cams.example", 1554, 1889, 1888)
    listed = await client.call("get_camera_list")
    assert listed["cameras"][0]["streams"] == urls
    assert list(listed["cameras"][0]["streams"]) == ["rtsp", "webrtc", "hls"]
    status = await client.call("get_camera_status", {"device": "camera3"})
    assert status["streams"] == urls
