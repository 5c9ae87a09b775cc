"""The media plane's pure parts: the capture plan (PROTOCOL 5.8), snapshot params (5.9), the
encoders checked with an independent decoder (Pillow), atomic writes, disk usage."""

from __future__ import annotations

import io
import os
from fractions import Fraction

import pytest
from PIL import Image

from camera_service.config import CaptureSettings
from camera_service.devices.v4l2 import DeviceInfo, Format, FrameSize
from camera_service.media import encoders
from camera_service.media.capture import CaptureError, Frame, plan_capture
from camera_service.media.snapshots import _write_atomically, parse_request
from camera_service.media.storage import disk_usage, storage_state
from camera_service.rpc.errors import RpcError

R30, R15 = Fraction(30), Fraction(15)


def info(formats, current=(1280, 720, "YUYV"), fps=R30) -> DeviceInfo:
    return DeviceInfo(
        path="/dev/video0",
        driver="uvcvideo",
        card="c",
        bus_info="b",
        version=0,
        capabilities=1,
        device_caps=1,
        formats=tuple(formats),
        current_width=current[0],
        current_height=current[1],
        current_fourcc=current[2],
        current_fps=fps,
    )


MJPG = Format("MJPG", "Motion-JPEG", (FrameSize(1920, 1080, (R30,)), FrameSize(640, 480, (R30,))))
YUYV = Format("YUYV", "YUYV", (FrameSize(1280, 720, (R15,)), FrameSize(640, 480, (R30, R15))))


def test_plan_prefers_the_first_configured_format_the_camera_offers():
    plan = plan_capture(info([YUYV, MJPG]), CaptureSettings())
    # The current size 1280x720 is not an MJPG size: the largest MJPG size is taken.
    assert (plan.fourcc, plan.width, plan.height, plan.fps) == ("MJPG", 1920, 1080, None)
    plan = plan_capture(info([YUYV, MJPG]), CaptureSettings(formats=("YUYV", "MJPG")))
    assert (plan.fourcc, plan.width, plan.height, plan.fps) == ("YUYV", 1280, 720, None)


def test_plan_uses_configured_size_and_rate():
    settings = CaptureSettings(formats=("YUYV",), resolution="640x480", fps=7.5)
    plan = plan_capture(info([YUYV]), settings)
    assert (plan.width, plan.height, plan.fps) == (640, 480, Fraction(15, 2))


def test_plan_takes_the_highest_offered_rate_when_the_current_one_is_unknown():
    plan = plan_capture(info([YUYV], current=(640, 480, "YUYV"), fps=None), CaptureSettings())
    assert (plan.width, plan.height, plan.fps) == (640, 480, R30)


def test_plan_without_an_allowed_format_is_a_clear_error():
    with pytest.raises(CaptureError, match="offers YUYV, capture.formats allows MJPG"):
        plan_capture(info([YUYV]), CaptureSettings(formats=("MJPG",)))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ("jpg", 85, None)),
        ({"format": "JPEG", "quality": 1}, ("jpg", 1, None)),
        ({"format": "png", "filename": "door"}, ("png", 85, "door.png")),
        ({"filename": "a.jpeg"}, ("jpg", 85, "a.jpeg")),
        ({"filename": "a.png"}, ("jpg", 85, "a.png.jpg")),
    ],
)
def test_snapshot_params(params, expected):
    request = parse_request(params, 85)
    assert (request.format, request.quality, request.filename) == expected


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"format": "gif"}, "format"),
        ({"format": 1}, "format"),
        ({"quality": 0}, "quality"),
        ({"quality": 101}, "quality"),
        ({"quality": True}, "quality"),
        ({"quality": 50.0}, "quality"),
        ({"filename": "../x"}, "filename"),
        ({"filename": ".hidden"}, "filename"),
        ({"filename": 3}, "filename"),
    ],
)
def test_bad_snapshot_params_are_32602_naming_the_param(params, reason):
    with pytest.raises(RpcError) as info_:
        parse_request(params, 85)
    assert info_.value.code == -32602
    assert info_.value.data["reason"].startswith(reason)


def yuyv_frame(width: int, height: int) -> Frame:
    # Luma ramps left to right, chroma neutral: a grey gradient.
    row = bytearray()
    for x in range(0, width, 2):
        row += bytes([x * 255 // width, 128, (x + 1) * 255 // width, 128])
    return Frame(bytes(row) * height, "YUYV", width, height, 0, 0.0, 0.0, 0.0)


def test_yuyv_to_jpeg_decodes_to_the_same_picture():
    frame = yuyv_frame(320, 240)
    data = encoders.jpeg_from_frame(frame, 90)
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.size) == ("JPEG", (320, 240))
    grey = image.convert("L")
    assert grey.getpixel((2, 120)) < 20 and grey.getpixel((317, 120)) > 235
    assert encoders.jpeg_size(data) == (320, 240)
    # Higher quality is a bigger file (the reference inverted this scale).
    assert len(encoders.jpeg_from_frame(frame, 95)) > len(encoders.jpeg_from_frame(frame, 10))


def test_mjpg_frames_are_kept_byte_for_byte_and_png_decodes():
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(buffer, "JPEG")
    frame = Frame(buffer.getvalue(), "MJPG", 64, 48, 0, 0.0, 0.0, 0.0)
    assert encoders.jpeg_from_frame(frame, 10) is frame.data
    png = Image.open(io.BytesIO(encoders.png_from_frame(frame)))
    assert (png.format, png.size, png.mode) == ("PNG", (64, 48), "RGB")
    r, g, b = png.getpixel((32, 24))
    assert r > 180 and g < 40 and b < 40
    png = Image.open(io.BytesIO(encoders.png_from_frame(yuyv_frame(64, 48))))
    assert png.size == (64, 48)


def test_encoders_refuse_what_they_cannot_read():
    with pytest.raises(encoders.EncodeError):
        encoders.jpeg_from_frame(Frame(b"x", "YUYV", 64, 48, 0, 0.0, 0.0, 0.0), 80)
    with pytest.raises(encoders.EncodeError):
        encoders.png_from_frame(Frame(b"not a jpeg", "MJPG", 64, 48, 0, 0.0, 0.0, 0.0))
    with pytest.raises(encoders.EncodeError):
        encoders.jpeg_from_frame(Frame(b"", "H264", 64, 48, 0, 0.0, 0.0, 0.0), 80)


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "a.jpg")
    _write_atomically(path, b"old")
    _write_atomically(path, b"new bytes")
    assert open(path, "rb").read() == b"new bytes"
    assert os.listdir(tmp_path) == ["a.jpg"]


def test_disk_usage_matches_statvfs(tmp_path):
    usage = disk_usage(str(tmp_path))
    assert 0 < usage.used <= usage.total and 0 <= usage.available <= usage.total
    assert storage_state(str(tmp_path), 100, 100) == (usage.used_percent >= 100,) * 2
    assert storage_state(str(tmp_path), 1, 1) == (usage.used_percent >= 1,) * 2
