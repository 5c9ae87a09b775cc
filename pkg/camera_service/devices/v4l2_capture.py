"""An open V4L2 capture node that streams: format, frame rate, mmap buffers, QBUF/DQBUF.

Single-planar `V4L2_BUF_TYPE_VIDEO_CAPTURE` with `V4L2_MEMORY_MMAP`, the way UVC cameras are
read. The node is opened non-blocking: `dequeue()` answers None when no frame is ready, and
the caller waits for readability of `fileno()` (poll) instead of spinning. Every failure is a
`DeviceError` subclass from the one errno map in `devices.errors`: `DeviceBusy` when another
program holds the camera, `DeviceGone` when it was unplugged mid-stream.

Blocking calls (ioctls may sleep in the driver) belong in the capture thread, never on the
event loop; cffi releases the GIL around each ioctl.
"""

from __future__ import annotations

import errno
import mmap
import os
from dataclasses import dataclass
from fractions import Fraction

from camera_service.devices._native import ffi, lib
from camera_service.devices.errors import DeviceError, error_from_errno
from camera_service.devices.v4l2 import (
    fourcc_from_str,
    fourcc_to_str,
    interval_to_fps,
    ioctl_errno,
)

CAPTURE = lib.V4L2_BUF_TYPE_VIDEO_CAPTURE


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """What the driver agreed to deliver."""

    fourcc: str
    width: int
    height: int
    bytes_per_line: int
    size_image: int


@dataclass(frozen=True, slots=True)
class FrameSlot:
    """A filled buffer taken from the driver: give it back with `requeue(index)`."""

    index: int
    bytes_used: int
    sequence: int
    timestamp: float  # seconds, the driver's clock (CLOCK_MONOTONIC on UVC)
    error: bool  # the driver flagged the data as corrupted


class CaptureDevice:
    """One open node. Not thread-safe: one thread drives it."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise error_from_errno(exc.errno or errno.EIO, path, "open") from None
        self._maps: list[mmap.mmap] = []
        self._streaming = False
        self._buf = ffi.new("struct v4l2_buffer *")

    def fileno(self) -> int:
        return self._fd

    def _call(self, request: int, arg: object, operation: str) -> None:
        err = ioctl_errno(self._fd, request, arg)
        if err:
            raise error_from_errno(err, self.path, operation)

    # ---- setup -------------------------------------------------------------------------------

    def set_format(self, fourcc: str, width: int, height: int) -> StreamFormat:
        """Ask for a format (VIDIOC_S_FMT); the driver may adjust it: the answer says what
        will really come."""
        fmt = ffi.new("struct v4l2_format *")
        fmt.type = CAPTURE
        pix = lib.cs_format_pix(fmt)
        pix.width, pix.height = width, height
        pix.pixelformat = fourcc_from_str(fourcc)
        pix.field = lib.V4L2_FIELD_ANY
        self._call(lib.VIDIOC_S_FMT, fmt, "VIDIOC_S_FMT")
        return StreamFormat(
            fourcc_to_str(pix.pixelformat), pix.width, pix.height, pix.bytesperline, pix.sizeimage
        )

    def set_frame_rate(self, fps: Fraction) -> Fraction | None:
        """Ask for a frame rate (VIDIOC_S_PARM); returns the rate the driver chose, or None
        when the driver does not support setting it."""
        parm = ffi.new("struct v4l2_streamparm *")
        parm.type = CAPTURE
        capture = lib.cs_streamparm_capture(parm)
        capture.timeperframe.numerator = fps.denominator
        capture.timeperframe.denominator = fps.numerator
        err = ioctl_errno(self._fd, lib.VIDIOC_S_PARM, parm)
        if err in (errno.EINVAL, errno.ENOTTY):
            return None
        if err:
            raise error_from_errno(err, self.path, "VIDIOC_S_PARM")
        tpf = capture.timeperframe
        return interval_to_fps(tpf.numerator, tpf.denominator)

    def start(self, buffer_count: int) -> int:
        """Allocate and map the buffers, queue them all and start streaming; returns how many
        buffers the driver gave."""
        req = ffi.new("struct v4l2_requestbuffers *")
        req.count, req.type, req.memory = buffer_count, CAPTURE, lib.V4L2_MEMORY_MMAP
        self._call(lib.VIDIOC_REQBUFS, req, "VIDIOC_REQBUFS")
        if req.count < 1:
            raise DeviceError(errno.ENOMEM, self.path, "VIDIOC_REQBUFS", "no buffers granted")
        buf = ffi.new("struct v4l2_buffer *")
        for index in range(req.count):
            buf.index, buf.type, buf.memory = index, CAPTURE, lib.V4L2_MEMORY_MMAP
            self._call(lib.VIDIOC_QUERYBUF, buf, "VIDIOC_QUERYBUF")
            try:
                mapping = mmap.mmap(
                    self._fd,
                    buf.length,
                    mmap.MAP_SHARED,
                    mmap.PROT_READ,
                    offset=lib.cs_buffer_offset(buf),
                )
            except OSError as exc:
                raise error_from_errno(exc.errno or errno.EIO, self.path, "mmap") from None
            self._maps.append(mapping)
        for index in range(req.count):
            self.requeue(index)
        stream_type = ffi.new("int *", CAPTURE)
        self._call(lib.VIDIOC_STREAMON, stream_type, "VIDIOC_STREAMON")
        self._streaming = True
        return int(req.count)

    # ---- frames ------------------------------------------------------------------------------

    def dequeue(self) -> FrameSlot | None:
        """A filled buffer, or None when none is ready yet (wait for readability)."""
        buf = self._buf
        buf.type, buf.memory = CAPTURE, lib.V4L2_MEMORY_MMAP
        err = ioctl_errno(self._fd, lib.VIDIOC_DQBUF, buf)
        if err == errno.EAGAIN:
            return None
        if err:
            raise error_from_errno(err, self.path, "VIDIOC_DQBUF")
        timestamp = buf.timestamp.tv_sec + buf.timestamp.tv_usec * 1e-6
        return FrameSlot(
            buf.index,
            buf.bytesused,
            buf.sequence,
            timestamp,
            bool(buf.flags & lib.V4L2_BUF_FLAG_ERROR),
        )

    def read(self, slot: FrameSlot) -> bytes:
        """A copy of the frame's bytes, so the buffer can go back to the driver at once."""
        mapping = self._maps[slot.index]
        return mapping[: min(slot.bytes_used, len(mapping))]

    def requeue(self, index: int) -> None:
        buf = self._buf
        buf.index, buf.type, buf.memory = index, CAPTURE, lib.V4L2_MEMORY_MMAP
        self._call(lib.VIDIOC_QBUF, buf, "VIDIOC_QBUF")

    # ---- teardown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop streaming, unmap and free the buffers, close the node. Errors of a node that
        is already gone are expected here and ignored."""
        if self._fd < 0:
            return
        if self._streaming:
            ioctl_errno(self._fd, lib.VIDIOC_STREAMOFF, ffi.new("int *", CAPTURE))
            self._streaming = False
        for mapping in self._maps:
            mapping.close()
        if self._maps:
            req = ffi.new("struct v4l2_requestbuffers *")
            req.count, req.type, req.memory = 0, CAPTURE, lib.V4L2_MEMORY_MMAP
            ioctl_errno(self._fd, lib.VIDIOC_REQBUFS, req)
            self._maps.clear()
        os.close(self._fd)
        self._fd = -1


__all__ = ["CaptureDevice", "FrameSlot", "StreamFormat"]
