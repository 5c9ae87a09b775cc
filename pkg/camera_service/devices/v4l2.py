"""Read what a V4L2 node can do, through the real ioctls (cffi, layouts from the kernel headers).

`probe(path)` opens the node, asks QUERYCAP, walks the format / frame size / frame interval
enumerations, reads the current format and frame rate, and closes the node again: a camera is
never held open. It blocks (ioctls can be slow on real hardware), so the monitor runs it in a
worker thread; cffi releases the GIL around each call.

The node does not have to be a character device: QUERYCAP succeeding is what makes it V4L2.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from camera_service.devices._native import ffi, lib
from camera_service.devices.errors import DeviceError, error_from_errno

# Real drivers end each enumeration with EINVAL after a handful of entries. These caps only
# matter for a broken or hostile driver that never does; they bound the probe's cost.
MAX_FORMATS = 128
MAX_FRAME_SIZES = 256
MAX_FRAME_INTERVALS = 128

# Sizes offered for a stepwise/continuous range: the common capture sizes, largest first.
STANDARD_SIZES: tuple[tuple[int, int], ...] = (
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
)

# Rates offered for a stepwise/continuous interval range, highest first (7.5 is common on UVC).
STANDARD_RATES: tuple[Fraction, ...] = tuple(
    Fraction(r)
    for r in ("120", "90", "60", "50", "30", "25", "24", "20", "15", "10", "7.5", "5", "1")
)

# v4l2_fourcc_be() sets the top bit; the header has no named constant for it.
_FOURCC_BE_FLAG = 1 << 31


@dataclass(frozen=True, slots=True)
class FrameSize:
    """A frame size a format offers, with its frame rates (exact fractions)."""

    width: int
    height: int
    fps: tuple[Fraction, ...] = ()  # highest first


@dataclass(frozen=True, slots=True)
class SizeRange:
    """A stepwise or continuous frame size range, as the driver reported it."""

    kind: str  # "stepwise" | "continuous"
    min_width: int
    max_width: int
    step_width: int
    min_height: int
    max_height: int
    step_height: int


@dataclass(frozen=True, slots=True)
class Format:
    """A pixel format a node offers, with its frame sizes."""

    fourcc: str
    description: str
    sizes: tuple[FrameSize, ...] = ()
    flags: int = 0
    size_range: SizeRange | None = None  # set when the sizes were derived from a range


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What a probe of a video node found (QUERYCAP, formats, current format and rate)."""

    path: str
    driver: str
    card: str
    bus_info: str
    version: int
    capabilities: int
    device_caps: int  # the node's own caps (falls back to `capabilities` on old drivers)
    formats: tuple[Format, ...] = ()
    current_width: int | None = None
    current_height: int | None = None
    current_fourcc: str | None = None
    current_fps: Fraction | None = None

    @property
    def driver_version(self) -> str:
        return kernel_version_string(self.version)

    @property
    def is_capture(self) -> bool:
        return bool(
            self.device_caps & (lib.V4L2_CAP_VIDEO_CAPTURE | lib.V4L2_CAP_VIDEO_CAPTURE_MPLANE)
        )

    @property
    def is_mplane(self) -> bool:
        # A node offering both APIs is driven through the single-planar one.
        caps = self.device_caps
        return bool(caps & lib.V4L2_CAP_VIDEO_CAPTURE_MPLANE) and not (
            caps & lib.V4L2_CAP_VIDEO_CAPTURE
        )


# ---- pure conversions (unit-tested without a device) -------------------------------------


def kernel_version_string(version: int) -> str:
    """KERNEL_VERSION(a, b, c) packs a<<16 | b<<8 | c."""
    return f"{(version >> 16) & 0xFF}.{(version >> 8) & 0xFF}.{version & 0xFF}"


def fourcc_to_str(code: int) -> str:
    chars = []
    for shift in (0, 8, 16, 24):
        byte = (code >> shift) & 0xFF
        if shift == 24:
            byte &= 0x7F  # the big-endian flag shares the top byte
        chars.append(chr(byte) if 32 <= byte < 127 else "?")
    text = "".join(chars)
    return text + "-BE" if code & _FOURCC_BE_FLAG else text


def fourcc_from_str(text: str) -> int:
    big_endian = text.endswith("-BE")
    if big_endian:
        text = text[:-3]
    raw = text.encode("ascii").ljust(4, b" ")
    if len(raw) != 4:
        raise ValueError(f"a FourCC has 4 characters: {text!r}")
    code = int.from_bytes(raw, "little")
    return code | _FOURCC_BE_FLAG if big_endian else code


def interval_to_fps(numerator: int, denominator: int) -> Fraction | None:
    """Frames per second for a frame interval of numerator/denominator seconds."""
    if numerator <= 0 or denominator <= 0:
        return None
    return Fraction(denominator, numerator)


def fps_value(rate: Fraction | float | None) -> int | float:
    """What clients see: an int for whole rates (30), a float otherwise (7.5); 0 for unknown."""
    if rate is None:
        return 0
    if isinstance(rate, Fraction):
        return int(rate) if rate.denominator == 1 else float(rate)
    if isinstance(rate, float) and rate.is_integer():
        return int(rate)
    return rate


def _fits(value: int, low: int, high: int, step: int) -> bool:
    if not low <= value <= high:
        return False
    return step <= 1 or (value - low) % step == 0


def sizes_in_range(rng: SizeRange) -> list[tuple[int, int]]:
    """Sizes to report for a range: its maximum, then the standard sizes that fit its steps."""
    sizes: list[tuple[int, int]] = []
    if rng.max_width > 0 and rng.max_height > 0:
        sizes.append((rng.max_width, rng.max_height))
    for w, h in STANDARD_SIZES:
        on_grid = _fits(w, rng.min_width, rng.max_width, rng.step_width) and _fits(
            h, rng.min_height, rng.max_height, rng.step_height
        )
        if on_grid and (w, h) not in sizes:
            sizes.append((w, h))
    # A range too small for any standard size still offers its minimum.
    if len(sizes) <= 1 and rng.min_width > 0 and rng.min_height > 0:
        low = (rng.min_width, rng.min_height)
        if low not in sizes:
            sizes.append(low)
    return sizes


def rates_in_range(
    min_interval: Fraction, max_interval: Fraction, step: Fraction
) -> list[Fraction]:
    """Rates for an interval range: fastest, standard rates on the step grid, slowest."""
    if min_interval <= 0 or max_interval < min_interval:
        return []
    rates = {1 / min_interval, 1 / max_interval}
    for rate in STANDARD_RATES:
        interval = 1 / rate
        if not min_interval <= interval <= max_interval:
            continue
        if step > 0 and ((interval - min_interval) / step).denominator != 1:
            continue
        rates.add(rate)
    return sorted(rates, reverse=True)


def _text(raw: Any) -> str:
    data = bytes(ffi.buffer(raw))
    return data.split(b"\0", 1)[0].decode("utf-8", "replace")


# ---- ioctls ---------------------------------------------------------------------------------


def ioctl_errno(fd: int, request: int, arg: Any) -> int:
    """Issue one ioctl; 0 on success, else the errno (EINTR is retried here, nowhere else)."""
    while True:
        if lib.ioctl(fd, request, arg) >= 0:
            return 0
        err = ffi.errno
        if err != errno.EINTR:
            return err


def _ioctl_or_raise(fd: int, request: int, arg: Any, path: str, operation: str) -> None:
    err = ioctl_errno(fd, request, arg)
    if err:
        raise error_from_errno(err, path, operation)


def _enumeration_ended(err: int, index: int) -> bool:
    """EINVAL past the last entry ends an enumeration; ENOTTY at the start means unsupported."""
    return err == errno.EINVAL or (err == errno.ENOTTY and index == 0)


def _enum_intervals(
    fd: int, path: str, pixelformat: int, width: int, height: int
) -> tuple[Fraction, ...]:
    rates: set[Fraction] = set()
    for index in range(MAX_FRAME_INTERVALS):
        ival = ffi.new("struct v4l2_frmivalenum *")  # zeroed: reserved fields must be 0
        ival.index = index
        ival.pixel_format = pixelformat
        ival.width = width
        ival.height = height
        err = ioctl_errno(fd, lib.VIDIOC_ENUM_FRAMEINTERVALS, ival)
        if err:
            if _enumeration_ended(err, index):
                break
            raise error_from_errno(err, path, "VIDIOC_ENUM_FRAMEINTERVALS")
        if ival.type == lib.V4L2_FRMIVAL_TYPE_DISCRETE:
            rate = interval_to_fps(ival.discrete.numerator, ival.discrete.denominator)
            if rate is not None:
                rates.add(rate)
            continue
        # Stepwise and continuous ranges are reported once, at index 0.
        sw = ival.stepwise
        if sw.min.numerator and sw.min.denominator and sw.max.numerator and sw.max.denominator:
            step = Fraction(0)  # continuous: any interval in the range
            if ival.type == lib.V4L2_FRMIVAL_TYPE_STEPWISE and sw.step.denominator:
                step = Fraction(sw.step.numerator, sw.step.denominator)
            rates.update(
                rates_in_range(
                    Fraction(sw.min.numerator, sw.min.denominator),
                    Fraction(sw.max.numerator, sw.max.denominator),
                    step,
                )
            )
        break
    return tuple(sorted(rates, reverse=True))


def _enum_sizes(
    fd: int, path: str, pixelformat: int
) -> tuple[tuple[FrameSize, ...], SizeRange | None]:
    sizes: list[FrameSize] = []
    seen: set[tuple[int, int]] = set()
    size_range: SizeRange | None = None
    for index in range(MAX_FRAME_SIZES):
        fsize = ffi.new("struct v4l2_frmsizeenum *")  # zeroed: reserved fields must be 0
        fsize.index = index
        fsize.pixel_format = pixelformat
        err = ioctl_errno(fd, lib.VIDIOC_ENUM_FRAMESIZES, fsize)
        if err:
            if _enumeration_ended(err, index):
                break
            raise error_from_errno(err, path, "VIDIOC_ENUM_FRAMESIZES")
        if fsize.type == lib.V4L2_FRMSIZE_TYPE_DISCRETE:
            wh = (fsize.discrete.width, fsize.discrete.height)
            if wh not in seen:
                seen.add(wh)
                sizes.append(FrameSize(wh[0], wh[1], _enum_intervals(fd, path, pixelformat, *wh)))
            continue
        sw = fsize.stepwise
        continuous = fsize.type == lib.V4L2_FRMSIZE_TYPE_CONTINUOUS
        size_range = SizeRange(
            kind="continuous" if continuous else "stepwise",
            min_width=sw.min_width,
            max_width=sw.max_width,
            step_width=1 if continuous else sw.step_width,
            min_height=sw.min_height,
            max_height=sw.max_height,
            step_height=1 if continuous else sw.step_height,
        )
        for w, h in sizes_in_range(size_range):
            sizes.append(FrameSize(w, h, _enum_intervals(fd, path, pixelformat, w, h)))
        break
    return tuple(sizes), size_range


def _enum_formats(fd: int, path: str, buf_type: int) -> tuple[Format, ...]:
    formats: list[Format] = []
    for index in range(MAX_FORMATS):
        desc = ffi.new("struct v4l2_fmtdesc *")  # zeroed: reserved fields must be 0
        desc.index = index
        desc.type = buf_type
        err = ioctl_errno(fd, lib.VIDIOC_ENUM_FMT, desc)
        if err:
            if _enumeration_ended(err, index):
                break
            raise error_from_errno(err, path, "VIDIOC_ENUM_FMT")
        pixelformat = desc.pixelformat
        sizes, size_range = _enum_sizes(fd, path, pixelformat)
        formats.append(
            Format(
                fourcc=fourcc_to_str(pixelformat),
                description=_text(desc.description),
                sizes=sizes,
                flags=desc.flags,
                size_range=size_range,
            )
        )
    return tuple(formats)


def _optional(err: int, path: str, operation: str) -> bool:
    """True when a query for optional data failed in a way that just means 'not available'."""
    if err in (errno.EINVAL, errno.ENOTTY, errno.ENODATA):
        return True
    raise error_from_errno(err, path, operation)


def _current_format(fd: int, path: str, buf_type: int, mplane: bool) -> tuple[int, int, str] | None:
    fmt = ffi.new("struct v4l2_format *")
    fmt.type = buf_type
    err = ioctl_errno(fd, lib.VIDIOC_G_FMT, fmt)
    if err:
        _optional(err, path, "VIDIOC_G_FMT")
        return None
    pix = lib.cs_format_pix_mp(fmt) if mplane else lib.cs_format_pix(fmt)
    if not pix.width or not pix.height:
        return None
    return pix.width, pix.height, fourcc_to_str(pix.pixelformat)


def _current_fps(fd: int, path: str, buf_type: int) -> Fraction | None:
    parm = ffi.new("struct v4l2_streamparm *")
    parm.type = buf_type
    err = ioctl_errno(fd, lib.VIDIOC_G_PARM, parm)
    if err:
        _optional(err, path, "VIDIOC_G_PARM")
        return None
    tpf = lib.cs_streamparm_capture(parm).timeperframe
    return interval_to_fps(tpf.numerator, tpf.denominator)


def _open(path: str) -> int:
    try:
        # os.open retries EINTR itself (PEP 475).
        return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise error_from_errno(exc.errno or errno.EIO, path, "open") from None


def probe(path: str) -> DeviceInfo:
    """Everything discovery needs to know about one node. Raises a `DeviceError` subclass."""
    fd = _open(path)
    try:
        cap = ffi.new("struct v4l2_capability *")
        _ioctl_or_raise(fd, lib.VIDIOC_QUERYCAP, cap, path, "VIDIOC_QUERYCAP")
        capabilities = cap.capabilities
        device_caps = cap.device_caps if capabilities & lib.V4L2_CAP_DEVICE_CAPS else capabilities
        info = DeviceInfo(
            path=path,
            driver=_text(cap.driver),
            card=_text(cap.card),
            bus_info=_text(cap.bus_info),
            version=cap.version,
            capabilities=capabilities,
            device_caps=device_caps,
        )
        if not info.is_capture:
            # Metadata and output nodes are not cameras: nothing more worth asking.
            return info
        mplane = info.is_mplane
        buf_type = (
            lib.V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE if mplane else lib.V4L2_BUF_TYPE_VIDEO_CAPTURE
        )
        formats = _enum_formats(fd, path, buf_type)
        current = _current_format(fd, path, buf_type, mplane)
        fps = _current_fps(fd, path, buf_type)
        return DeviceInfo(
            path=path,
            driver=info.driver,
            card=info.card,
            bus_info=info.bus_info,
            version=info.version,
            capabilities=capabilities,
            device_caps=device_caps,
            formats=formats,
            current_width=current[0] if current else None,
            current_height=current[1] if current else None,
            current_fourcc=current[2] if current else None,
            current_fps=fps,
        )
    finally:
        os.close(fd)


__all__ = [
    "STANDARD_RATES",
    "STANDARD_SIZES",
    "DeviceError",
    "DeviceInfo",
    "Format",
    "FrameSize",
    "SizeRange",
    "fourcc_from_str",
    "fourcc_to_str",
    "fps_value",
    "interval_to_fps",
    "kernel_version_string",
    "probe",
    "rates_in_range",
    "sizes_in_range",
]
