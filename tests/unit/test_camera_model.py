"""Camera model: field fallbacks (PROTOCOL 5.2-5.4), the protocol dicts, stream URLs."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

import pytest

from camera_service.cameras.model import (
    CONNECTED,
    DISCONNECTED,
    ERROR,
    Camera,
    camera_capabilities,
    camera_list_entry,
    camera_status,
)
from camera_service.cameras.streams import StreamUrls
from camera_service.devices.v4l2 import DeviceInfo, Format, FrameSize

F = Fraction


def info(formats=(), current=None, fps=None, card="USB Cam") -> DeviceInfo:
    w, h, fourcc = current or (None, None, None)
    return DeviceInfo(
        path="/dev/video2",
        driver="uvcvideo",
        card=card,
        bus_info="usb-1",
        version=0x060112,
        capabilities=0x84A00001,
        device_caps=0x04200001,
        formats=tuple(formats),
        current_width=w,
        current_height=h,
        current_fourcc=fourcc,
        current_fps=fps,
    )


YUYV = Format(
    "YUYV",
    "YUYV 4:2:2",
    (
        FrameSize(640, 480, (F(30), F(15))),
        FrameSize(1280, 720, (F(10), F(15, 2))),
        FrameSize(320, 240, (F(30),)),
    ),
)
MJPG = Format(
    "MJPG",
    "Motion-JPEG",
    (
        FrameSize(1920, 1080, (F(30), F(25))),
        FrameSize(1280, 720, (F(30), F(24))),
        FrameSize(640, 480, (F(60), F(30))),
    ),
    flags=1,
)


def cam(device_info: DeviceInfo, detected_at: float = 100.0) -> Camera:
    return Camera.from_device_info("/dev/video2", 2, device_info, detected_at)


def test_everything_from_the_current_format():
    c = cam(info([YUYV, MJPG], (640, 480, "YUYV"), F(15)))
    assert c.status == CONNECTED
    assert c.name == "USB Cam"
    assert c.resolution == "640x480"
    assert c.fps == 15 and type(c.fps) is int
    assert c.formats == ("YUYV", "MJPG")
    assert c.resolutions == ("1920x1080", "1280x720", "640x480", "320x240")
    # Rates of the current format at the current size, not MJPG's 60.
    assert c.frame_rates == (30, 15)
    assert c.fps_options == (60, 30, 25, 24, 15, 10, 7.5)
    assert dict(c.device_info) == {
        "driver": "uvcvideo",
        "card": "USB Cam",
        "bus_info": "usb-1",
        "driver_version": "6.1.18",
    }
    assert c.stream_name == "camera2"
    assert c.error is None


def test_fractional_current_rate_is_a_float():
    c = cam(info([YUYV], (1280, 720, "YUYV"), F(15, 2)))
    assert c.fps == 7.5 and type(c.fps) is float
    assert c.frame_rates == (10, 7.5)


def test_no_current_rate_falls_back_to_the_highest_at_the_current_size():
    c = cam(info([YUYV, MJPG], (1280, 720, "MJPG"), None))
    assert (c.resolution, c.fps, c.frame_rates) == ("1280x720", 30, (30, 24))


def test_zero_current_rate_counts_as_unknown():
    c = cam(info([YUYV], (640, 480, "YUYV"), F(0)))
    assert c.fps == 30


def test_no_current_format_uses_the_largest_size_and_all_its_rates():
    c = cam(info([YUYV, MJPG]))
    assert (c.resolution, c.fps, c.frame_rates) == ("1920x1080", 30, (30, 25))


def test_current_format_without_that_size_uses_every_format_at_that_size():
    c = cam(info([YUYV, MJPG], (1920, 1080, "YUYV"), None))
    assert (c.fps, c.frame_rates) == (30, (30, 25))


def test_resolutions_sorted_by_area_then_width_without_duplicates():
    fmt = Format("GREY", "grey", (FrameSize(960, 960), FrameSize(1280, 720), FrameSize(960, 960)))
    c = cam(info([fmt]))
    assert c.resolutions == ("1280x720", "960x960")
    assert (c.resolution, c.fps, c.frame_rates, c.fps_options) == ("1280x720", 0, (), ())


def test_no_sizes_at_all():
    c = cam(info([Format("H264", "H.264", ())]))
    assert (c.resolution, c.fps, c.resolutions, c.formats) == ("", 0, (), ("H264",))


def test_empty_card_gives_camera_n():
    assert cam(info(card="")).name == "Camera 2"


def test_error_camera_fields():
    c = Camera.failed("/dev/video7", 7, "VIDIOC_QUERYCAP on /dev/video7: I/O error", 5.0)
    assert (c.status, c.name, c.resolution, c.fps) == (ERROR, "Camera 7", "", 0)
    assert (c.formats, c.resolutions, c.frame_rates, c.fps_options) == ((), (), (), ())
    assert dict(c.device_info) == {"driver": "", "card": "", "bus_info": "", "driver_version": ""}
    assert c.error.startswith("VIDIOC_QUERYCAP") and c.info is None


def test_equality_ignores_detection_time_and_raw_info_but_not_status():
    a = cam(info([YUYV], (640, 480, "YUYV")), detected_at=1.0)
    b = cam(info([YUYV], (640, 480, "YUYV")), detected_at=2.0)
    assert a == b
    assert a.with_status(DISCONNECTED) != a
    assert a.with_status(DISCONNECTED).detected_at == 1.0
    with pytest.raises(TypeError):
        a.device_info["card"] = "x"  # type: ignore[index]
    assert hash(a) == hash(b)


STREAMS = StreamUrls("cams.example", 8554, 8889, 8888)


def test_list_entry_keys_in_protocol_order():
    c = cam(info([YUYV], (640, 480, "YUYV"), F(30)))
    entry = camera_list_entry(c, STREAMS)
    assert list(entry) == ["device", "status", "name", "resolution", "fps", "streams"]
    assert entry == {
        "device": "/dev/video2",
        "status": "CONNECTED",
        "name": "USB Cam",
        "resolution": "640x480",
        "fps": 30,
        "streams": {
            "rtsp": "rtsp://cams.example:8554/camera2",
            "webrtc": "http://cams.example:8889/camera2/webrtc",
            "hls": "http://cams.example:8888/camera2",
        },
    }
    # A ready dict or None is accepted as well.
    assert camera_list_entry(c, {"rtsp": "x"})["streams"] == {"rtsp": "x"}
    assert camera_list_entry(c, None)["streams"] == {}


def test_status_adds_capabilities_device_info_and_uptime():
    c = cam(info([YUYV, MJPG], (640, 480, "YUYV"), F(30)), detected_at=100.0)
    status = camera_status(c, STREAMS, now=112.25)
    assert list(status) == [
        "device",
        "status",
        "name",
        "resolution",
        "fps",
        "streams",
        "capabilities",
        "device_info",
        "metrics",
    ]
    assert status["capabilities"] == {
        "formats": ["YUYV", "MJPG"],
        "resolutions": ["1920x1080", "1280x720", "640x480", "320x240"],
        "frame_rates": [30, 15],
    }
    assert status["device_info"]["driver_version"] == "6.1.18"
    assert status["metrics"] == {"uptime": 12.25}
    assert camera_status(c, STREAMS, now=50.0)["metrics"] == {"uptime": 0.0}


def test_capabilities_validation_status():
    c = cam(info([YUYV, MJPG], (640, 480, "YUYV")))
    assert camera_capabilities(c) == {
        "device": "/dev/video2",
        "formats": ["YUYV", "MJPG"],
        "resolutions": ["1920x1080", "1280x720", "640x480", "320x240"],
        "fps_options": [60, 30, 25, 24, 15, 10, 7.5],
        "validation_status": "confirmed",
    }
    assert camera_capabilities(c.with_status(DISCONNECTED))["validation_status"] == "disconnected"
    failed = Camera.failed("/dev/video3", 3, "boom", 0.0)
    assert camera_capabilities(failed) == {
        "device": "/dev/video3",
        "formats": [],
        "resolutions": [],
        "fps_options": [],
        "validation_status": "disconnected",
    }


def test_stream_urls():
    c = cam(info())
    assert StreamUrls().for_camera(c) == {
        "rtsp": "rtsp://localhost:8554/camera2",
        "webrtc": "http://localhost:8889/camera2/webrtc",
        "hls": "http://localhost:8888/camera2",
    }
    assert STREAMS.for_camera(c.with_status(DISCONNECTED)) == {}
    assert STREAMS.for_camera(Camera.failed("/dev/video4", 4, "x", 0.0))["hls"] == (
        "http://cams.example:8888/camera4"
    )
    assert StreamUrls("::1", 1, 2, 3).for_stream("camera0")["rtsp"] == "rtsp://[::1]:1/camera0"
    cfg = SimpleNamespace(
        media=SimpleNamespace(host="10.0.0.5", rtsp_port=1, webrtc_port=2, hls_port=3)
    )
    assert StreamUrls.from_config(cfg) == StreamUrls("10.0.0.5", 1, 2, 3)
