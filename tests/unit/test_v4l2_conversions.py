"""Pure conversions of the V4L2 layer: rates, sizes, FourCC, versions, errno mapping."""

from __future__ import annotations

import errno
import pickle
from fractions import Fraction

import pytest

from camera_service.devices._native import ffi, lib
from camera_service.devices.errors import (
    DeviceBusy,
    DeviceError,
    DeviceGone,
    DeviceIOError,
    DevicePermission,
    DeviceTimeout,
    NotAV4L2Device,
    error_from_errno,
)
from camera_service.devices.v4l2 import (
    DeviceInfo,
    SizeRange,
    fourcc_from_str,
    fourcc_to_str,
    fps_value,
    interval_to_fps,
    kernel_version_string,
    rates_in_range,
    sizes_in_range,
)


@pytest.mark.parametrize(
    ("num", "den", "fps", "shown"),
    [
        (1, 30, Fraction(30), 30),
        (2, 15, Fraction(15, 2), 7.5),
        (1, 15, Fraction(15), 15),
        (1001, 30000, Fraction(30000, 1001), 30000 / 1001),
        (1, 1, Fraction(1), 1),
        (5, 1, Fraction(1, 5), 0.2),
    ],
)
def test_interval_to_fps_keeps_fractions_exact(num, den, fps, shown):
    rate = interval_to_fps(num, den)
    assert rate == fps
    value = fps_value(rate)
    assert value == shown
    assert type(value) is (int if fps.denominator == 1 else float)


@pytest.mark.parametrize(("num", "den"), [(0, 30), (1, 0), (0, 0)])
def test_interval_with_a_zero_is_unknown(num, den):
    assert interval_to_fps(num, den) is None


def test_fps_value_of_plain_numbers_and_none():
    assert fps_value(None) == 0
    assert fps_value(30.0) == 30 and type(fps_value(30.0)) is int
    assert fps_value(7.5) == 7.5
    assert fps_value(25) == 25


def test_kernel_version_string():
    assert kernel_version_string((6 << 16) | (1 << 8) | 0) == "6.1.0"
    assert kernel_version_string(0x041378) == "4.19.120"
    assert kernel_version_string(0) == "0.0.0"


def test_fourcc_round_trip_and_big_endian_flag():
    assert fourcc_to_str(0x56595559) == "YUYV"
    assert fourcc_from_str("MJPG") == 0x47504A4D
    assert fourcc_to_str(fourcc_from_str("Y16 ")) == "Y16 "
    assert fourcc_from_str("GREY") == int.from_bytes(b"GREY", "little")
    be = fourcc_from_str("Y16 -BE")
    assert be == int.from_bytes(b"Y16 ", "little") | (1 << 31)
    assert fourcc_to_str(be) == "Y16 -BE"
    assert fourcc_to_str(0x01020304) == "????"
    with pytest.raises(ValueError):
        fourcc_from_str("TOOLONG")


def test_stepwise_sizes_are_max_then_standard_sizes_on_the_step_grid():
    rng = SizeRange("stepwise", 320, 1920, 8, 240, 1080, 8)
    assert sizes_in_range(rng) == [
        (1920, 1080),
        (1280, 960),
        (1280, 720),
        (1024, 768),
        (800, 600),
        (640, 480),
        (640, 360),
        (352, 288),
        (320, 240),
    ]


def test_coarse_steps_exclude_sizes_off_the_grid():
    # Widths 320 + k*320, heights 240 + k*240: only sizes on both grids survive.
    rng = SizeRange("stepwise", 320, 1920, 320, 240, 1440, 240)
    assert sizes_in_range(rng) == [
        (1920, 1440),
        (1600, 1200),
        (1280, 960),
        (1280, 720),
        (640, 480),
        (320, 240),
    ]


def test_continuous_range_offers_every_standard_size_inside():
    rng = SizeRange("continuous", 160, 4096, 1, 120, 2160, 1)
    sizes = sizes_in_range(rng)
    assert sizes[0] == (4096, 2160)
    assert sizes[1:] == [
        (3840, 2160),
        (2560, 1440),
        (1920, 1080),
        (1600, 1200),
        (1280, 960),
        (1280, 720),
        (1024, 768),
        (800, 600),
        (640, 480),
        (640, 360),
        (352, 288),
        (320, 240),
        (176, 144),
        (160, 120),
    ]


def test_tiny_range_offers_its_max_and_min():
    rng = SizeRange("stepwise", 16, 100, 4, 16, 100, 4)
    assert sizes_in_range(rng) == [(100, 100), (16, 16)]


def test_stepwise_rates_respect_the_step():
    rates = rates_in_range(Fraction(1, 30), Fraction(1, 5), Fraction(1, 30))
    assert rates == [Fraction(30), Fraction(15), Fraction(10), Fraction(15, 2), Fraction(5)]
    assert [fps_value(r) for r in rates] == [30, 15, 10, 7.5, 5]


def test_continuous_rates_include_the_ends_and_standard_rates():
    rates = rates_in_range(Fraction(1, 60), Fraction(1, 1), Fraction(0))
    assert [fps_value(r) for r in rates] == [60, 50, 30, 25, 24, 20, 15, 10, 7.5, 5, 1]
    # Odd ends are kept exactly.
    odd = rates_in_range(Fraction(1001, 30000), Fraction(1, 2), Fraction(0))
    assert odd[0] == Fraction(30000, 1001) and odd[-1] == Fraction(2)


def test_invalid_rate_range_is_empty():
    assert rates_in_range(Fraction(0), Fraction(1), Fraction(0)) == []
    assert rates_in_range(Fraction(1, 5), Fraction(1, 30), Fraction(0)) == []


@pytest.mark.parametrize(
    ("err", "cls"),
    [
        (errno.ENODEV, DeviceGone),
        (errno.ENOENT, DeviceGone),
        (errno.ENXIO, DeviceGone),
        (errno.EACCES, DevicePermission),
        (errno.EPERM, DevicePermission),
        (errno.EBUSY, DeviceBusy),
        (errno.ENOTTY, NotAV4L2Device),
        (errno.EIO, DeviceIOError),
        (errno.EINVAL, DeviceIOError),
        (errno.ECONNABORTED, DeviceIOError),
    ],
)
def test_errno_mapping(err, cls):
    exc = error_from_errno(err, "/dev/video3", "VIDIOC_QUERYCAP")
    assert type(exc) is cls
    assert isinstance(exc, DeviceError) and isinstance(exc, OSError)
    assert (exc.errno, exc.path, exc.filename, exc.operation) == (
        err,
        "/dev/video3",
        "/dev/video3",
        "VIDIOC_QUERYCAP",
    )
    assert str(exc) == f"VIDIOC_QUERYCAP on /dev/video3: {exc.strerror} (errno {err})"
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is cls and copy.operation == "VIDIOC_QUERYCAP" and copy.errno == err


def test_timeout_error():
    exc = DeviceTimeout("/dev/video1", "probe", 2.0)
    assert exc.errno == errno.ETIMEDOUT and exc.timeout == 2.0
    assert str(exc) == f"probe on /dev/video1: no answer within 2 s (errno {errno.ETIMEDOUT})"
    assert pickle.loads(pickle.dumps(exc)).timeout == 2.0


def _info(capabilities: int, device_caps: int) -> DeviceInfo:
    return DeviceInfo("/dev/video0", "d", "c", "b", 0x060100, capabilities, device_caps)


def test_capture_and_mplane_flags_come_from_device_caps():
    single = _info(lib.V4L2_CAP_DEVICE_CAPS, lib.V4L2_CAP_VIDEO_CAPTURE)
    assert single.is_capture and not single.is_mplane and single.driver_version == "6.1.0"
    mplane = _info(0, lib.V4L2_CAP_VIDEO_CAPTURE_MPLANE)
    assert mplane.is_capture and mplane.is_mplane
    both = _info(0, lib.V4L2_CAP_VIDEO_CAPTURE | lib.V4L2_CAP_VIDEO_CAPTURE_MPLANE)
    assert both.is_capture and not both.is_mplane
    meta = _info(lib.V4L2_CAP_VIDEO_CAPTURE, lib.V4L2_CAP_META_CAPTURE)
    assert not meta.is_capture and not meta.is_mplane


def test_struct_layouts_come_from_the_kernel_headers():
    # The sizes the V4L2 UAPI fixes for 64-bit Linux; any drift in the cdef shows up here.
    assert ffi.sizeof("struct v4l2_capability") == 104
    assert ffi.sizeof("struct v4l2_fmtdesc") == 64
    assert ffi.sizeof("struct v4l2_frmsizeenum") == 44
    assert ffi.sizeof("struct v4l2_frmivalenum") == 52
    assert ffi.sizeof("struct v4l2_format") == (208 if ffi.sizeof("void *") == 8 else 204)
    assert ffi.sizeof("struct v4l2_streamparm") == 204
    assert lib.VIDIOC_QUERYCAP == 0x80685600
    assert lib.VIDIOC_ENUM_FRAMEINTERVALS == 0xC034564B
