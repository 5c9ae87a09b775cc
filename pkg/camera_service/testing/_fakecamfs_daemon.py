"""FUSE daemon serving fake V4L2 nodes as regular files (run as a subprocess by fakecams.py).

    python _fakecamfs_daemon.py MOUNTPOINT CONTROL_SOCKET [--log FILE] [--verbose]

Files created through the mount answer VIDIOC_QUERYCAP, ENUM_FMT, ENUM_FRAMESIZES,
ENUM_FRAMEINTERVALS, G_FMT and G_PARM from a camera spec (a JSON dict) that the test registered
for that path over the control socket beforehand. Registering goes through the socket, never
through the mount, so it makes no inotify event; the test then creates, chmods and unlinks the
file through the mount, which gives the real IN_CREATE / IN_ATTRIB / IN_DELETE.

They also stream like a UVC camera (single-planar VIDEO_CAPTURE, MMAP buffers only): S_FMT,
TRY_FMT, S_PARM, REQBUFS, QUERYBUF, QBUF, DQBUF, STREAMON/STREAMOFF, the one input
(ENUMINPUT/G_INPUT/S_INPUT, which ffmpeg asks for), FUSE poll and mmap; see "Streaming" below.

The struct layouts are written out here with `struct` on purpose instead of borrowing the
project's cffi module: the fake is a second, independent reading of <linux/videodev2.h>, so a
layout mistake on either side shows up as a test failure instead of cancelling out. They are
the LP64 layouts (x86_64, aarch64); G_FMT checks the size the caller encoded in the request.

Rules from the measurements in the design note FUSE-FAKE-CAMERAS.md:
  * libfuse chdir()s to "/", so every path this process uses is made absolute first;
  * mfusepy registers any attribute named like a FUSE operation, so the mutex is `_mu`;
  * a handler must not block: the only wait is the opt-in "hang" fault, which is bounded
    (MAX_HANG_SECONDS) and is cut short by the control commands `release` and `reset`.

Streaming. A pacer thread ("pacer", one for all nodes) ticks every streaming handle at its
frame interval: the oldest QUEUED buffer becomes DONE with the next sequence number and the
CLOCK_MONOTONIC time of the tick; with no buffer queued the frame is dropped and the sequence
still advances, so gaps show drops. DQBUF never waits (EAGAIN when nothing is DONE). Readiness
goes through the FUSE poll operation: the handler answers the current events and keeps the
kernel's poll handle; the pacer (or an unplug, STREAMOFF, close) calls fuse_notify_poll() on it,
which wakes poll()/select()/epoll in the caller, who then polls again. The buffers are regions of
the node itself: st_size covers them, QUERYBUF hands out m.offset inside them, and mmap
(MAP_SHARED, direct_io off) page-faults into read(), which serves a FIXED frame per (format,
width, height, buffer index). That is required because the page cache keeps whatever was read
first; it also means every (format, size) gets its own region of the file (allocated on first
REQBUFS, with a guard gap so readahead never caches a region before it is used).

This module runs in a subprocess and is excluded from coverage; it imports nothing from
camera_service so that the daemon starts fast and stands on its own.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import errno
import io
import json
import logging
import math
import os
import socketserver
import stat
import struct
import sys
import threading
import time
from typing import Any

os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")

import mfusepy

log = logging.getLogger("fakecamfs")

MAX_HANG_SECONDS = 5.0

# Device capability bits and buffer types (linux/videodev2.h).
CAP_VIDEO_CAPTURE = 0x00000001
CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
CAP_DEVICE_CAPS = 0x80000000
BUF_TYPE_VIDEO_CAPTURE = 1
BUF_TYPE_VIDEO_CAPTURE_MPLANE = 9
FRMSIZE_DISCRETE, FRMSIZE_CONTINUOUS, FRMSIZE_STEPWISE = 1, 2, 3
FRMIVAL_DISCRETE, FRMIVAL_CONTINUOUS, FRMIVAL_STEPWISE = 1, 2, 3
CAP_TIMEPERFRAME = 0x1000
FIELD_NONE = 1
COLORSPACE_SRGB = 8
PIX_FMT_PRIV_MAGIC = 0xFEEDCAFE
MEMORY_MMAP = 1
BUF_FLAG_MAPPED = 0x00000001
BUF_FLAG_QUEUED = 0x00000002
BUF_FLAG_DONE = 0x00000004
BUF_FLAG_TIMESTAMP_MONOTONIC = 0x00002000
BUF_FLAG_TSTAMP_SRC_SOE = 0x00010000
BUF_CAP_SUPPORTS_MMAP = 0x00000001
BUF_CAP_SUPPORTS_ORPHANED_BUFS = 0x00000010
INPUT_TYPE_CAMERA = 2
# uvcvideo: every buffer carries a monotonic start-of-exposure timestamp.
TS_FLAGS = BUF_FLAG_TIMESTAMP_MONOTONIC | BUF_FLAG_TSTAMP_SRC_SOE

MIN_BUFFERS, MAX_BUFFERS = 2, 32
PAGE = os.sysconf("SC_PAGE_SIZE")
# The buffer regions live inside the node; m.offset is a u32, so the file stays below 4 GiB.
STREAM_FILE_SIZE = (1 << 32) - PAGE
# Between two regions: more than the kernel's readahead / mmap read-around window, so a read
# near the end of one region never caches pages of a region allocated later.
REGION_GUARD = 4 << 20
# poll(2) bits (asm-generic/poll.h, the same on every Linux architecture we run on).
POLLIN, POLLERR, POLLHUP, POLLRDNORM = 0x001, 0x008, 0x010, 0x040

# ioctl numbers are _IOC(dir, 'V', nr, size): identify by nr, check the size the caller sent.
IOC_TYPE_V = ord("V")
NR_NAMES = {
    0: "VIDIOC_QUERYCAP",
    2: "VIDIOC_ENUM_FMT",
    4: "VIDIOC_G_FMT",
    5: "VIDIOC_S_FMT",
    8: "VIDIOC_REQBUFS",
    9: "VIDIOC_QUERYBUF",
    15: "VIDIOC_QBUF",
    17: "VIDIOC_DQBUF",
    18: "VIDIOC_STREAMON",
    19: "VIDIOC_STREAMOFF",
    21: "VIDIOC_G_PARM",
    22: "VIDIOC_S_PARM",
    26: "VIDIOC_ENUMINPUT",
    38: "VIDIOC_G_INPUT",
    39: "VIDIOC_S_INPUT",
    64: "VIDIOC_TRY_FMT",
    74: "VIDIOC_ENUM_FRAMESIZES",
    75: "VIDIOC_ENUM_FRAMEINTERVALS",
}
SIZES = {
    "VIDIOC_QUERYCAP": 104,
    "VIDIOC_ENUM_FMT": 64,
    "VIDIOC_G_FMT": 208,  # type + 4 bytes padding (the union holds pointers) + 200
    "VIDIOC_S_FMT": 208,
    "VIDIOC_TRY_FMT": 208,
    "VIDIOC_G_PARM": 204,
    "VIDIOC_S_PARM": 204,
    "VIDIOC_ENUM_FRAMESIZES": 44,
    "VIDIOC_ENUM_FRAMEINTERVALS": 52,
    "VIDIOC_REQBUFS": 20,
    "VIDIOC_QUERYBUF": 88,
    "VIDIOC_QBUF": 88,
    "VIDIOC_DQBUF": 88,
    "VIDIOC_STREAMON": 4,  # _IOW int
    "VIDIOC_STREAMOFF": 4,
    "VIDIOC_ENUMINPUT": 80,  # v4l2_input: std (u64) at 48, 76 bytes padded to 8
    "VIDIOC_G_INPUT": 4,  # _IOR int
    "VIDIOC_S_INPUT": 4,  # _IOWR int
}
# These need the handle's streaming state (and _mu); the others answer from the spec alone.
STREAM_NAMES = frozenset(
    {
        "VIDIOC_S_FMT",
        "VIDIOC_TRY_FMT",
        "VIDIOC_S_PARM",
        "VIDIOC_REQBUFS",
        "VIDIOC_QUERYBUF",
        "VIDIOC_QBUF",
        "VIDIOC_DQBUF",
        "VIDIOC_STREAMON",
        "VIDIOC_STREAMOFF",
    }
)

CAPABILITY = struct.Struct("=16s32s32sIII12x")
FMTDESC = struct.Struct("=III32sII12x")
FRMSIZE_DISCRETE_S = struct.Struct("=IIIII16x8x")
FRMSIZE_STEPWISE_S = struct.Struct("=IIIIIIIII8x")
FRMIVAL_DISCRETE_S = struct.Struct("=IIIIIII16x8x")
FRMIVAL_STEPWISE_S = struct.Struct("=11I8x")
PIX_FORMAT = struct.Struct("=IIIIIIII16x")  # first 8 of the 12 u32 of v4l2_pix_format
PIX_FORMAT_MPLANE = struct.Struct("=IIIII")  # width height pixelformat field colorspace
CAPTUREPARM = struct.Struct("=IIIIII")  # capability capturemode num den extendedmode readbuffers
# v4l2_requestbuffers: count type memory capabilities, flags (u8) + reserved[3].
REQUESTBUFFERS = struct.Struct("=IIIIB3x")
# v4l2_buffer (LP64, 88 bytes): index@0 type@4 bytesused@8 flags@12 field@16, 4 pad,
# timestamp@24 (timeval: 2 x int64), timecode@40 (16), sequence@56 memory@60, m@64 (union of
# 8: m.offset u32 first), length@72 reserved2@76 request_fd@80, 4 bytes of tail padding.
V4L2_BUFFER = struct.Struct("=IIIII4xqq16xIIIIIIII")
INPUT = struct.Struct("=I32sIIIQII12x")  # v4l2_input without its 4 bytes of tail padding


def fourcc(text: str) -> int:
    return int.from_bytes(text.encode("ascii").ljust(4, b" ")[:4], "little")


def _cstr(text: str, size: int) -> bytes:
    return text.encode("utf-8")[: size - 1]


def _round_up(value: int, to: int) -> int:
    return -(-value // to) * to


# Bytes per pixel of the uncompressed formats the specs use (x2 to keep it integral).
_DOUBLE_BPP = {"GREY": 2, "NV12": 3, "NV21": 3, "YU12": 3, "YV12": 3, "RGB3": 6, "BGR3": 6}


def _is_compressed(code: str) -> bool:
    return code in ("MJPG", "JPEG")


def bytesperline(code: str, width: int) -> int:
    if _is_compressed(code):
        return 0
    if code in ("NV12", "NV21", "YU12", "YV12", "GREY"):
        return width
    return width * _DOUBLE_BPP.get(code, 4) // 2


def sizeimage(code: str, width: int, height: int) -> int:
    # MJPG: a fixed upper bound, as uvcvideo reports dwMaxVideoFrameBufferSize.
    return width * height * _DOUBLE_BPP.get(code, 4) // 2


# ---- test frames ---------------------------------------------------------------------------
# Eight colour bars (white yellow cyan green magenta red blue black) as RGB and BT.601 YCbCr.
_BARS_RGB = [
    (235, 235, 235),
    (235, 235, 16),
    (16, 235, 235),
    (16, 235, 16),
    (235, 16, 235),
    (235, 16, 16),
    (16, 16, 235),
    (16, 16, 16),
]
_BARS_YUV = [
    (235, 128, 128),
    (210, 16, 146),
    (170, 166, 16),
    (145, 54, 34),
    (106, 202, 222),
    (81, 90, 240),
    (41, 240, 110),
    (16, 128, 128),
]


def _shift(width: int, index: int) -> int:
    """Buffer `index` shows the bars rotated by index/32 of the width (even pixels: YUYV)."""
    return (index * max(2, width // MAX_BUFFERS)) // 2 * 2 % max(width, 2)


class FrameStore:
    """The fixed frame of each (fourcc, width, height, buffer index), built on demand.

    MJPG frames are baseline JPEGs made with Pillow, imported on first use (when the first MJPG
    buffer is read or dequeued, or when STREAMON warms the cache), so the daemon starts fast.
    YUYV frames are colour bars made from one row; other formats a flat fill per buffer.
    """

    MAX_JPEGS = 512

    def __init__(self) -> None:
        self._frames_mu = threading.Lock()
        self._jpegs: dict[tuple[int, int, int], bytes] = {}
        self._rows: dict[tuple[int, int], bytes] = {}
        self._warming: set[tuple[int, int, int]] = set()

    def jpeg(self, width: int, height: int, index: int) -> bytes:
        key = (width, height, index)
        with self._frames_mu:
            data = self._jpegs.get(key)
        if data is None:
            data = _encode_jpeg(width, height, index)  # outside the lock: CPU only, bounded
            with self._frames_mu:
                if len(self._jpegs) >= self.MAX_JPEGS:
                    self._jpegs.clear()
                self._jpegs[key] = data
        return data

    def yuyv_row(self, width: int, index: int) -> bytes:
        key = (width, index)
        with self._frames_mu:
            row = self._rows.get(key)
        if row is None:
            bar = max(1, width // len(_BARS_YUV))
            pixels = bytearray()
            for x in range(0, width - width % 2, 2):
                y, u, v = _BARS_YUV[min(x // bar, len(_BARS_YUV) - 1)]
                pixels += bytes((y, u, y, v))
            cut = _shift(width, index) * 2
            row = bytes(pixels[cut:] + pixels[:cut])
            with self._frames_mu:
                self._rows[key] = row
        return row

    def length(self, code: str, width: int, height: int, index: int) -> int:
        """bytesused of that frame: the JPEG's own length, else the full image size."""
        if _is_compressed(code):
            return len(self.jpeg(width, height, index))
        if code == "YUYV":
            return width * height * 2
        return sizeimage(code, width, height)

    def chunk(self, code: str, width: int, height: int, index: int, start: int, end: int) -> bytes:
        """Bytes [start, end) of the buffer (the frame, then zeros up to the buffer's end)."""
        if _is_compressed(code):
            data = self.jpeg(width, height, index)[start:end]
        else:
            size = self.length(code, width, height, index)
            stop = min(end, size)
            if start >= stop:
                data = b""
            elif code == "YUYV":
                row = self.yuyv_row(width, index)
                first, last = start // len(row), -(-stop // len(row))
                data = (row * (last - first))[start - first * len(row) : stop - first * len(row)]
            else:
                data = bytes((16 + 7 * index,)) * (stop - start)
        return data + bytes(end - start - len(data))

    def warm(self, width: int, height: int, count: int) -> None:
        """Encode the JPEGs of buffers 0..count-1 on a thread, so handlers rarely have to."""
        key = (width, height, count)
        with self._frames_mu:
            if key in self._warming:
                return
            self._warming.add(key)

        def run() -> None:
            try:
                for index in range(count):
                    self.jpeg(width, height, index)
            except Exception:
                log.exception("encoding test frames failed")
            finally:
                with self._frames_mu:
                    self._warming.discard(key)

        threading.Thread(target=run, name="frames-warm", daemon=True).start()


def _encode_jpeg(width: int, height: int, index: int) -> bytes:
    from PIL import Image, ImageDraw  # lazily: only once MJPG frames are needed

    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    bar = max(1, width // len(_BARS_RGB))
    shift = _shift(width, index)
    for k, colour in enumerate(_BARS_RGB):
        x0 = (k * bar + shift) % width
        draw.rectangle([x0, 0, x0 + bar - 1, height - 1], fill=colour)
        if x0 + bar > width:  # the bar wraps around the right edge
            draw.rectangle([0, 0, x0 + bar - 1 - width, height - 1], fill=colour)
    # The buffer number as five binary blocks (white = 1) along the top left.
    block = max(4, min(width, height) // 16)
    for bit in range(5):
        fill = (255, 255, 255) if index >> bit & 1 else (0, 0, 0)
        x0 = block // 2 + bit * block * 3 // 2
        draw.rectangle([x0, block // 2, x0 + block - 1, block // 2 + block - 1], fill=fill)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)  # baseline (not progressive), 4:2:0
    return out.getvalue()


class Fault(Exception):
    def __init__(self, err: int) -> None:
        super().__init__(err)
        self.err = err


class Node:
    __slots__ = (
        "atime",
        "ctime",
        "gid",
        "kind",
        "mode",
        "mtime",
        "next_base",
        "owner",
        "regions",
        "spec",
        "uid",
        "unlinked",
    )

    def __init__(self, kind: int, mode: int, spec: dict | None = None) -> None:
        now = time.time_ns()
        self.kind = kind
        self.mode = mode & 0o7777
        self.uid = os.getuid()
        self.gid = os.getgid()
        self.atime = self.mtime = self.ctime = now
        self.spec = spec
        self.unlinked = False
        # Streaming: the handle holding buffers ("in use by another program" for the others),
        # and the buffer region of each (fourcc, width, height) in the file: (base, stride).
        self.owner: Handle | None = None
        self.regions: dict[tuple[str, int, int], tuple[int, int]] = {}
        self.next_base = 0

    def file_size(self) -> int:
        if self.kind == stat.S_IFREG and self.spec and self.spec.get("formats"):
            return STREAM_FILE_SIZE
        return 0

    def region(self, code: str, width: int, height: int) -> tuple[int, int]:
        """(base, stride) of this format's buffers, allocated in the file on first use."""
        key = (code, width, height)
        found = self.regions.get(key)
        if found is not None:
            return found
        stride = _round_up(sizeimage(code, width, height), PAGE)
        span = stride * MAX_BUFFERS
        base = self.next_base
        if base + span > STREAM_FILE_SIZE:
            # Out of offsets (dozens of formats used on one node): start over. A region then
            # reused for another format could show pages cached for the old one in the same
            # open file; reopening the node clears the page cache.
            self.regions.clear()
            base = 0
        if span > STREAM_FILE_SIZE:
            raise Fault(errno.ENOMEM)
        self.regions[key] = (base, stride)
        self.next_base = _round_up(base + span + REGION_GUARD, PAGE)
        return base, stride

    def locate(self, offset: int) -> tuple[tuple[str, int, int], int, int, int] | int:
        """(format key, buffer index, offset in the buffer, buffer end) of a file offset, or,
        outside every region, the offset where the next region starts (the file size if none)."""
        following = STREAM_FILE_SIZE
        for key, (base, stride) in self.regions.items():
            if base <= offset < base + stride * MAX_BUFFERS:
                index, within = divmod(offset - base, stride)
                return key, index, within, base + (index + 1) * stride
            if offset < base < following:
                following = base
        return following


# Buffer states (videobuf2's DEQUEUED / QUEUED / DONE).
DEQUEUED, QUEUED, DONE = 0, 1, 2


class Buffer:
    __slots__ = ("index", "sequence", "state", "timestamp_ns")

    def __init__(self, index: int) -> None:
        self.index = index
        self.state = DEQUEUED
        self.sequence = 0
        self.timestamp_ns = 0


class Handle:
    __slots__ = (
        "buffers",
        "delivered",
        "done",
        "eintr_left",
        "fmt",
        "gone",
        "interval_ns",
        "next_due",
        "node",
        "pollhandle",
        "queued",
        "region",
        "sequence",
        "streaming",
    )

    def __init__(self, node: Node) -> None:
        self.node = node
        self.gone = False
        # Per-open countdown of EINTR answers, so the caller's retry loop is exercised.
        self.eintr_left = dict((node.spec or {}).get("faults", {}).get("ioctl_eintr", {}))
        self.buffers: list[Buffer] = []
        self.fmt: tuple[str, int, int] = ("", 0, 0)  # fourcc, width, height of the buffers
        self.region: tuple[int, int] = (0, 0)  # base, stride
        self.queued: collections.deque[int] = collections.deque()
        self.done: collections.deque[int] = collections.deque()
        self.streaming = False
        self.sequence = 0  # frames the camera produced since STREAMON, dropped ones included
        self.delivered = 0  # frames that reached a buffer since STREAMON
        self.next_due = 0
        self.interval_ns = 0
        # The kernel's latest FUSE poll handle for this open file (a fuse_pollhandle *).
        self.pollhandle: int | None = None

    @property
    def dead(self) -> bool:
        return self.gone or self.node.unlinked

    def events(self) -> int:
        if self.dead:
            return POLLERR | POLLHUP
        if not self.streaming:
            return POLLERR  # as videobuf2: nothing to wait for
        return POLLIN | POLLRDNORM if self.done else 0


class FakeCamFS(mfusepy.Operations):
    use_ns = True
    # Operations on an open file arrive without a path. Without this, libfuse's high-level
    # layer holds a lock on the path for the whole request, so a hanging ioctl would block an
    # unlink of the same node: real unplugs are never held up by a stuck ioctl.
    flag_nullpath_ok = True
    flag_nopath = True

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._release = threading.Event()
        self.nodes: dict[str, Node] = {"/": Node(stat.S_IFDIR, 0o755)}
        self.registered: dict[str, dict] = {}
        self.handles: dict[int, Handle] = {}
        self.dir_handles: dict[int, str] = {}
        self.next_fh = 1
        self.opens = 0
        self.ioctls = 0
        self.verbose = False
        self.frames = FrameStore()
        # Streaming handles, ticked by the pacer thread (started on the first STREAMON).
        self.streaming: set[Handle] = set()
        self._pacer_cv = threading.Condition(self._mu)
        self._pacer_gen = 0
        self._pacer: threading.Thread | None = None
        self._stopping = False
        # fuse_notify_poll() must not run once the session is being torn down (`destroy`).
        self._notify_mu = threading.Lock()
        self._session_gone = False
        self._lib = mfusepy._libfuse
        self._lib.fuse_notify_poll.argtypes = [ctypes.c_void_p]
        self._lib.fuse_notify_poll.restype = ctypes.c_int
        self._lib.fuse_pollhandle_destroy.argtypes = [ctypes.c_void_p]
        self._lib.fuse_pollhandle_destroy.restype = None

    # ---- control commands (called from the control thread) --------------------------------

    def command(self, req: dict) -> dict:
        op = req.get("op")
        if op == "ping":
            return {"ok": True}
        if op == "register":
            with self._mu:
                self.registered[_norm(req["path"])] = req["spec"]
            return {"ok": True}
        if op == "unregister":
            with self._mu:
                self.registered.pop(_norm(req["path"]), None)
            return {"ok": True}
        if op == "faults":
            path = _norm(req["path"])
            with self._mu:
                faults = dict(req.get("faults") or {})
                if path in self.registered:
                    self.registered[path] = {**self.registered[path], "faults": faults}
                node = self.nodes.get(path)
                if node is not None and node.spec is not None:
                    node.spec = {**node.spec, "faults": faults}
            return {"ok": True}
        if op == "release":
            self._wake_hung()
            return {"ok": True}
        if op == "reset":
            with self._mu:
                self.registered.clear()
            self._wake_hung()
            return {"ok": True}
        if op == "stats":
            with self._mu:
                return {
                    "ok": True,
                    "open_handles": len(self.handles),
                    "opens": self.opens,
                    "ioctls": self.ioctls,
                    "streaming": len(self.streaming),
                    "nodes": sorted(p for p in self.nodes if p != "/"),
                }
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _wake_hung(self) -> None:
        # Wake every handler currently waiting in a hang fault, then arm a fresh event.
        with self._mu:
            old, self._release = self._release, threading.Event()
        old.set()

    # ---- tree helpers (caller holds _mu) -----------------------------------------------------

    def _node(self, path: str) -> Node:
        node = self.nodes.get(path)
        if node is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        return node

    def _parent_dir(self, path: str) -> Node:
        parent = self.nodes.get(os.path.dirname(path))
        if parent is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        if parent.kind != stat.S_IFDIR:
            raise mfusepy.FuseOSError(errno.ENOTDIR)
        return parent

    def _children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return [
            p[len(prefix) :]
            for p in self.nodes
            if p != "/" and p.startswith(prefix) and "/" not in p[len(prefix) :]
        ]

    def _new_handle(self, node: Node) -> int:
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = Handle(node)
        self.opens += 1
        return fh

    # ---- FUSE operations ---------------------------------------------------------------------

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        with self._mu:
            handle = self.handles.get(fh) if fh is not None else None
            if handle is not None:
                node = handle.node
            else:
                fallback = self.dir_handles.get(fh, "") if fh is not None else ""
                node = self._node(path if path is not None else fallback)
            is_dir = node.kind == stat.S_IFDIR
            return {
                "st_mode": node.kind | node.mode,
                "st_nlink": 2 if is_dir else (0 if node.unlinked else 1),
                "st_size": node.file_size(),
                "st_uid": node.uid,
                "st_gid": node.gid,
                "st_atime": node.atime,
                "st_mtime": node.mtime,
                "st_ctime": node.ctime,
            }

    def opendir(self, path: str) -> int:
        # With nullpath_ok, readdir gets no path: remember it per directory handle.
        with self._mu:
            if self._node(path).kind != stat.S_IFDIR:
                raise mfusepy.FuseOSError(errno.ENOTDIR)
            fh = self.next_fh
            self.next_fh += 1
            self.dir_handles[fh] = path
            return fh

    def releasedir(self, path: str | None, fh: int) -> int:
        with self._mu:
            self.dir_handles.pop(fh, None)
        return 0

    def readdir(self, path: str | None, fh: int) -> list[str]:
        with self._mu:
            if path is None:
                path = self.dir_handles.get(fh, "")
            if self._node(path).kind != stat.S_IFDIR:
                raise mfusepy.FuseOSError(errno.ENOTDIR)
            return [".", "..", *sorted(self._children(path))]

    def mkdir(self, path: str, mode: int) -> int:
        with self._mu:
            self._parent_dir(path)
            if path in self.nodes:
                raise mfusepy.FuseOSError(errno.EEXIST)
            self.nodes[path] = Node(stat.S_IFDIR, mode)
        return 0

    def rmdir(self, path: str) -> int:
        with self._mu:
            node = self._node(path)
            if node.kind != stat.S_IFDIR:
                raise mfusepy.FuseOSError(errno.ENOTDIR)
            if self._children(path):
                raise mfusepy.FuseOSError(errno.ENOTEMPTY)
            del self.nodes[path]
        return 0

    def create(self, path: str, mode: int, flags: int) -> int:
        with self._mu:
            self._parent_dir(path)
            if path in self.nodes:
                raise mfusepy.FuseOSError(errno.EEXIST)
            node = Node(stat.S_IFREG, mode, self.registered.get(path))
            self.nodes[path] = node
            return self._new_handle(node)

    def mknod(self, path: str, mode: int, dev: int) -> int:
        # Only regular files: a character device would be routed to a real driver by the kernel.
        if not stat.S_ISREG(mode):
            raise mfusepy.FuseOSError(errno.EPERM)
        with self._mu:
            self._parent_dir(path)
            if path in self.nodes:
                raise mfusepy.FuseOSError(errno.EEXIST)
            self.nodes[path] = Node(stat.S_IFREG, mode, self.registered.get(path))
        return 0

    def open(self, path: str, flags: int) -> int:
        with self._mu:
            node = self._node(path)
            faults = (node.spec or {}).get("faults", {})
            # As root the kernel would let us in whatever the mode; emulate the udev window in
            # which the node exists but its permissions are not set yet.
            if not node.mode & 0o444:
                raise mfusepy.FuseOSError(errno.EACCES)
            if faults.get("open_errno"):
                raise mfusepy.FuseOSError(int(faults["open_errno"]))
            return self._new_handle(node)

    def release(self, path: str, fh: int) -> int:
        # The last close of the open file (mmaps keep it open): its buffers are freed.
        with self._mu:
            handle = self.handles.pop(fh, None)
            wake = []
            if handle is not None:
                self._free_buffers(handle)
                if handle.pollhandle is not None:
                    wake.append(handle.pollhandle)
                    handle.pollhandle = None
        self._notify(wake, destroy_only=True)
        return 0

    def unlink(self, path: str) -> int:
        with self._mu:
            node = self._node(path)
            if node.kind == stat.S_IFDIR:
                raise mfusepy.FuseOSError(errno.EISDIR)
            del self.nodes[path]
            wake = self._unplug(node)
        self._notify(wake)
        return 0

    def _unplug(self, node: Node) -> list[int]:
        """Mark a node gone (caller holds _mu): its handles answer ENODEV and their pollers
        get POLLERR|POLLHUP. Returns the poll handles to notify once _mu is released."""
        node.unlinked = True
        wake = []
        for handle in self.handles.values():
            if handle.node is node:
                self.streaming.discard(handle)
                if handle.pollhandle is not None:
                    wake.append(handle.pollhandle)
                    handle.pollhandle = None
        return wake

    def rename(self, old: str, new: str) -> int:
        with self._mu:
            node = self._node(old)
            self._parent_dir(new)
            target = self.nodes.get(new)
            wake: list[int] = []
            if target is not None:
                if target.kind == stat.S_IFDIR and self._children(new):
                    raise mfusepy.FuseOSError(errno.ENOTEMPTY)
                wake = self._unplug(target)
            moved = {old: node}
            if node.kind == stat.S_IFDIR:
                prefix = old + "/"
                moved.update({p: n for p, n in self.nodes.items() if p.startswith(prefix)})
            for p in moved:
                del self.nodes[p]
            for p, n in moved.items():
                self.nodes[new + p[len(old) :]] = n
            for fh, p in list(self.dir_handles.items()):
                if p in moved:
                    self.dir_handles[fh] = new + p[len(old) :]
        self._notify(wake)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        with self._mu:
            node = self._node(path)
            node.mode = mode & 0o7777
            node.ctime = time.time_ns()
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        with self._mu:
            node = self._node(path)
            if uid != -1 and uid != 0xFFFFFFFF:
                node.uid = uid
            if gid != -1 and gid != 0xFFFFFFFF:
                node.gid = gid
            node.ctime = time.time_ns()
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        with self._mu:
            node = self._node(path)
            now = time.time_ns()
            node.atime, node.mtime = times if times else (now, now)
        return 0

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        # Page faults of mmap()ed buffers (and readahead) land here. What is served at an offset
        # never changes for a node, because the page cache keeps the first answer.
        with self._mu:
            handle = self.handles.get(fh)
            if handle is None:
                return b""
            node = handle.node
            end = min(offset + size, node.file_size())
            pieces: list[tuple[tuple[str, int, int] | None, int, int, int]] = []
            pos = offset
            while pos < end:
                where = node.locate(pos)
                if isinstance(where, int):  # outside every region (guard gap, unused space)
                    stop = min(where, end)
                    pieces.append((None, 0, pos, stop))
                else:
                    key, index, within, buffer_end = where
                    stop = min(buffer_end, end)
                    pieces.append((key, index, within, within + stop - pos))
                pos = stop
        out: list[bytes] = []
        for fmt, n, start, stop in pieces:  # frames are built outside the lock
            if fmt is None:
                out.append(bytes(stop - start))
            else:
                out.append(self.frames.chunk(*fmt, n, start, stop))
        return b"".join(out)

    def poll(self, path: str | None, fh: int, ph: int | None, reventsp: Any) -> int:
        # The kernel asks for the current events and, when someone waits, hands a poll handle:
        # keep the newest (they all name this open file) and notify it when the events change.
        stale = []
        with self._mu:
            handle = self.handles.get(fh)
            events = handle.events() if handle is not None else POLLERR | POLLHUP
            if ph:
                if handle is None:
                    stale.append(ph)
                else:
                    if handle.pollhandle is not None:
                        stale.append(handle.pollhandle)
                    handle.pollhandle = ph
        self._notify(stale, destroy_only=True)
        reventsp[0] = events
        return 0

    def destroy(self, path: str) -> None:
        # Called by libfuse before the session goes away: no more notifications after this.
        with self._mu:
            self._stopping = True
            self._pacer_cv.notify_all()
        with self._notify_mu:
            self._session_gone = True

    def _notify(self, handles: list[int], destroy_only: bool = False) -> None:
        """Wake the callers waiting on these poll handles and free them (never under _mu)."""
        if not handles:
            return
        with self._notify_mu:
            for ph in handles:
                if not destroy_only and not self._session_gone:
                    self._lib.fuse_notify_poll(ph)
                self._lib.fuse_pollhandle_destroy(ph)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return len(data)

    def ioctl(self, path: str, cmd: int, arg: Any, fh: int, flags: int, data: Any) -> int:
        cmd &= 0xFFFFFFFF
        size = (cmd >> 16) & 0x3FFF
        name = NR_NAMES.get(cmd & 0xFF) if (cmd >> 8) & 0xFF == IOC_TYPE_V else None
        with self._mu:
            self.ioctls += 1
            handle = self.handles.get(fh)
            if handle is None or handle.gone or handle.node.unlinked:
                raise mfusepy.FuseOSError(errno.ENODEV)
            spec = handle.node.spec
            if spec is None or name is None or SIZES[name] != size:
                raise mfusepy.FuseOSError(errno.ENOTTY)
            faults = spec.get("faults", {})
            if handle.eintr_left.get(name, 0) > 0:
                handle.eintr_left[name] -= 1
                raise mfusepy.FuseOSError(errno.EINTR)
            release = self._release
        hang = faults.get("hang")
        if hang and hang.get("ioctl", "VIDIOC_QUERYCAP") == name:
            # The one deliberate wait: bounded, and `release`/`reset` end it early.
            release.wait(min(float(hang.get("seconds", 1.0)), MAX_HANG_SECONDS))
        err = faults.get("ioctl_errno", {}).get(name)
        if err:
            raise mfusepy.FuseOSError(int(err))
        # _IOR requests hand us uninitialised memory: only read input for _IOW and _IOWR ones.
        inbuf = mfusepy.ctypes.string_at(data, size) if data and cmd >> 30 & 1 else b""
        wake: list[int] = []
        try:
            if name in STREAM_NAMES:
                out = self._stream_answer(handle, name, inbuf, size, wake)
            else:
                out = self._answer(spec, name, inbuf, size)
        except Fault as exc:
            raise mfusepy.FuseOSError(exc.err) from None
        finally:
            self._notify(wake)
        if faults.get("gone_after") == name:
            gone: list[int] = []
            with self._mu:
                handle.gone = True
                self.streaming.discard(handle)
                if handle.pollhandle is not None:
                    gone.append(handle.pollhandle)
                    handle.pollhandle = None
            self._notify(gone)
        if self.verbose:
            log.info("ioctl %s %s in=%s -> %d bytes", path, name, inbuf[:16].hex(), len(out))
        if cmd >> 31 and out:  # _IOR / _IOWR: the kernel copies `size` bytes back
            mfusepy.ctypes.memmove(data, out, len(out))
        return 0

    # ---- V4L2 answers --------------------------------------------------------------------------

    @staticmethod
    def _buf_type(spec: dict) -> int | None:
        caps = spec.get("capabilities", 0)
        if caps & CAP_DEVICE_CAPS:  # old drivers describe the node in `capabilities` alone
            caps = spec.get("device_caps", 0)
        if caps & CAP_VIDEO_CAPTURE:
            return BUF_TYPE_VIDEO_CAPTURE
        if caps & CAP_VIDEO_CAPTURE_MPLANE:
            return BUF_TYPE_VIDEO_CAPTURE_MPLANE
        return None

    @staticmethod
    def _format(spec: dict, code: int) -> dict:
        for fmt in spec.get("formats", ()):
            if fourcc(fmt["fourcc"]) == code:
                return fmt
        raise Fault(errno.EINVAL)

    def _answer(self, spec: dict, name: str, inbuf: bytes, size: int) -> bytes:
        if name == "VIDIOC_QUERYCAP":
            return CAPABILITY.pack(
                _cstr(spec.get("driver", ""), 16),
                _cstr(spec.get("card", ""), 32),
                _cstr(spec.get("bus_info", ""), 32),
                spec.get("version", 0),
                spec.get("capabilities", 0),
                spec.get("device_caps", 0),
            )
        buf_type = self._buf_type(spec)
        if name == "VIDIOC_ENUM_FMT":
            index, req_type = struct.unpack_from("=II", inbuf)
            formats = spec.get("formats", [])
            if req_type != buf_type or index >= len(formats):
                raise Fault(errno.EINVAL)
            fmt = formats[index]
            return FMTDESC.pack(
                index,
                req_type,
                fmt.get("flags", 0),
                _cstr(fmt.get("description", ""), 32),
                fourcc(fmt["fourcc"]),
                0,
            )
        if name == "VIDIOC_ENUM_FRAMESIZES":
            index, code = struct.unpack_from("=II", inbuf)
            fmt = self._format(spec, code)
            if "stepwise" in fmt:
                if index != 0:
                    raise Fault(errno.EINVAL)
                sw = fmt["stepwise"]
                kind = FRMSIZE_CONTINUOUS if sw.get("continuous") else FRMSIZE_STEPWISE
                return FRMSIZE_STEPWISE_S.pack(
                    0,
                    code,
                    kind,
                    sw["min_width"],
                    sw["max_width"],
                    sw.get("step_width", 1),
                    sw["min_height"],
                    sw["max_height"],
                    sw.get("step_height", 1),
                )
            sizes = fmt.get("sizes", [])
            if index >= len(sizes):
                raise Fault(errno.EINVAL)
            return FRMSIZE_DISCRETE_S.pack(
                index, code, FRMSIZE_DISCRETE, sizes[index]["width"], sizes[index]["height"]
            )
        if name == "VIDIOC_ENUM_FRAMEINTERVALS":
            index, code, width, height = struct.unpack_from("=IIII", inbuf)
            fmt = self._format(spec, code)
            if "stepwise" in fmt:
                sw = fmt["stepwise"]
                if not (
                    sw["min_width"] <= width <= sw["max_width"]
                    and sw["min_height"] <= height <= sw["max_height"]
                ):
                    raise Fault(errno.EINVAL)
                intervals = fmt.get("intervals", [])
                ival_range = fmt.get("interval_range")
            else:
                match = [
                    s for s in fmt.get("sizes", []) if (s["width"], s["height"]) == (width, height)
                ]
                if not match:
                    raise Fault(errno.EINVAL)
                intervals = match[0].get("intervals", [])
                ival_range = match[0].get("interval_range")
            if ival_range is not None:
                if index != 0:
                    raise Fault(errno.EINVAL)
                step = ival_range.get("step")
                kind = FRMIVAL_STEPWISE if step else FRMIVAL_CONTINUOUS
                step = step or [1, 1]
                return FRMIVAL_STEPWISE_S.pack(
                    0,
                    code,
                    width,
                    height,
                    kind,
                    *ival_range["min"],
                    *ival_range["max"],
                    *step,
                )
            if index >= len(intervals):
                raise Fault(errno.EINVAL)
            num, den = intervals[index]
            return FRMIVAL_DISCRETE_S.pack(index, code, width, height, FRMIVAL_DISCRETE, num, den)
        if name == "VIDIOC_G_FMT":
            (req_type,) = struct.unpack_from("=I", inbuf)
            current = spec.get("current")
            if req_type != buf_type or not current:
                raise Fault(errno.EINVAL)
            out = bytearray(size)
            struct.pack_into("=I", out, 0, req_type)
            union_at = size - 200  # 8 on LP64: the union is pointer-aligned
            w, h, code = current["width"], current["height"], fourcc(current["fourcc"])
            if req_type == BUF_TYPE_VIDEO_CAPTURE_MPLANE:
                PIX_FORMAT_MPLANE.pack_into(out, union_at, w, h, code, 1, 0)
            else:
                _pack_pix(out, union_at, current["fourcc"], w, h)
            return bytes(out)
        if name == "VIDIOC_G_PARM":
            (req_type,) = struct.unpack_from("=I", inbuf)
            tpf = spec.get("timeperframe")
            if req_type != buf_type or tpf is None:
                raise Fault(errno.EINVAL)
            out = bytearray(size)
            struct.pack_into("=I", out, 0, req_type)
            CAPTUREPARM.pack_into(out, 4, CAP_TIMEPERFRAME, 0, tpf[0], tpf[1], 0, 0)
            return bytes(out)
        # One input, as uvcvideo has ("Camera 1"); ffmpeg's v4l2 input asks for it.
        if buf_type is None:
            raise Fault(errno.ENOTTY)
        if name == "VIDIOC_G_INPUT":
            return struct.pack("=I", 0)
        if name == "VIDIOC_S_INPUT":
            (index,) = struct.unpack_from("=I", inbuf)
            if index != 0:
                raise Fault(errno.EINVAL)
            return struct.pack("=I", 0)
        if name == "VIDIOC_ENUMINPUT":
            (index,) = struct.unpack_from("=I", inbuf)
            if index != 0:
                raise Fault(errno.EINVAL)
            out = bytearray(size)
            INPUT.pack_into(out, 0, 0, b"Camera 1", INPUT_TYPE_CAMERA, 0, 0, 0, 0, 0)
            return bytes(out)
        raise Fault(errno.ENOTTY)

    # ---- streaming ---------------------------------------------------------------------------

    def _stream_answer(
        self, handle: Handle, name: str, inbuf: bytes, size: int, wake: list[int]
    ) -> bytes:
        """The ioctls that read or change streaming state. Poll handles to notify afterwards
        (outside _mu) are appended to `wake`."""
        frame: tuple[str, int, int, int] | None = None
        with self._mu:
            if handle.dead:
                raise Fault(errno.ENODEV)
            node = handle.node
            spec = node.spec or {}
            buf_type = self._buf_type(spec)
            (req_type,) = struct.unpack_from("=I", inbuf, 4 if "BUF" in name else 0)
            if req_type != BUF_TYPE_VIDEO_CAPTURE or buf_type != BUF_TYPE_VIDEO_CAPTURE:
                raise Fault(errno.EINVAL)  # single-planar capture only
            other_owner = node.owner is not None and node.owner is not handle
            if name in ("VIDIOC_S_FMT", "VIDIOC_TRY_FMT"):
                code, w, h = self._nearest_format(spec, inbuf)
                if name == "VIDIOC_S_FMT":
                    if node.owner is not None:  # uvcvideo: EBUSY while buffers are allocated
                        raise Fault(errno.EBUSY)
                    tpf = self._nearest_interval(spec, code, w, h, spec.get("timeperframe"))
                    chosen = {"width": w, "height": h, "fourcc": code}
                    node.spec = {**spec, "current": chosen, "timeperframe": tpf}
                out = bytearray(size)
                struct.pack_into("=I", out, 0, req_type)
                _pack_pix(out, size - 200, code, w, h)
                return bytes(out)
            if name == "VIDIOC_S_PARM":
                if spec.get("timeperframe") is None:
                    raise Fault(errno.EINVAL)
                if other_owner or handle.streaming:
                    raise Fault(errno.EBUSY)
                _cap, _mode, num, den = struct.unpack_from("=IIII", inbuf, 4)
                current: dict[str, Any] = spec.get("current") or {}
                asked = [num, den] if num and den else spec["timeperframe"]
                tpf = self._nearest_interval(
                    spec,
                    current.get("fourcc", ""),
                    current.get("width", 0),
                    current.get("height", 0),
                    asked,
                )
                node.spec = {**spec, "timeperframe": tpf}
                out = bytearray(size)
                struct.pack_into("=I", out, 0, req_type)
                CAPTUREPARM.pack_into(out, 4, CAP_TIMEPERFRAME, 0, tpf[0], tpf[1], 0, 0)
                return bytes(out)
            if other_owner and name != "VIDIOC_QUERYBUF":  # anyone may look (videobuf2)
                raise Fault(errno.EBUSY)  # the node is in use by another open file
            if name == "VIDIOC_REQBUFS":
                count, _type, memory = struct.unpack_from("=III", inbuf)
                if memory != MEMORY_MMAP:
                    raise Fault(errno.EINVAL)
                if handle.streaming:
                    raise Fault(errno.EBUSY)
                self._free_buffers(handle)
                if count:
                    if not spec.get("current"):
                        raise Fault(errno.EINVAL)
                    code, w, h = (spec["current"][k] for k in ("fourcc", "width", "height"))
                    handle.region = node.region(code, w, h)
                    handle.fmt = (code, w, h)
                    count = min(max(count, MIN_BUFFERS), MAX_BUFFERS)
                    handle.buffers = [Buffer(i) for i in range(count)]
                    node.owner = handle
                caps = BUF_CAP_SUPPORTS_MMAP | BUF_CAP_SUPPORTS_ORPHANED_BUFS
                return REQUESTBUFFERS.pack(count, req_type, memory, caps, 0)
            if name in ("VIDIOC_STREAMON", "VIDIOC_STREAMOFF"):
                if name == "VIDIOC_STREAMOFF":
                    self._stop_streaming(handle, wake)
                    return b""
                if not handle.buffers:
                    raise Fault(errno.EINVAL)
                if not handle.streaming:
                    tpf = spec.get("timeperframe") or self._default_interval(spec, handle.fmt)
                    handle.interval_ns = max(1, tpf[0] * 1_000_000_000 // max(1, tpf[1]))
                    handle.streaming = True
                    handle.sequence = handle.delivered = 0
                    handle.next_due = time.monotonic_ns() + handle.interval_ns
                    self.streaming.add(handle)
                    self._start_pacer()
                    if _is_compressed(handle.fmt[0]):
                        self.frames.warm(handle.fmt[1], handle.fmt[2], len(handle.buffers))
                if handle.pollhandle is not None:  # POLLERR (not streaming) -> 0: re-poll
                    wake.append(handle.pollhandle)
                    handle.pollhandle = None
                return b""
            # QUERYBUF / QBUF / DQBUF
            if name == "VIDIOC_DQBUF":
                (memory,) = struct.unpack_from("=I", inbuf, 60)
                if memory != MEMORY_MMAP or not handle.streaming:
                    raise Fault(errno.EINVAL)
                if not handle.done:
                    raise Fault(errno.EAGAIN)  # never wait in a handler, even if O_NONBLOCK is off
                buf = handle.buffers[handle.done.popleft()]
                buf.state = DEQUEUED
                frame = (*handle.fmt, buf.index)
                flags = TS_FLAGS | BUF_FLAG_MAPPED | BUF_FLAG_DONE
            else:
                index, _type = struct.unpack_from("=II", inbuf)
                (memory,) = struct.unpack_from("=I", inbuf, 60)
                handle = node.owner or handle  # QUERYBUF from another open file: the owner's
                if memory != MEMORY_MMAP or index >= len(handle.buffers):
                    raise Fault(errno.EINVAL)
                buf = handle.buffers[index]
                if name == "VIDIOC_QBUF":
                    if buf.state != DEQUEUED:
                        raise Fault(errno.EINVAL)
                    buf.state = QUEUED
                    handle.queued.append(index)
                elif buf.state == DONE:
                    frame = (*handle.fmt, buf.index)
                # mmap() sends nothing to a FUSE daemon, so MAPPED is always reported.
                flags = TS_FLAGS | BUF_FLAG_MAPPED
                flags |= {QUEUED: BUF_FLAG_QUEUED, DONE: BUF_FLAG_DONE}.get(buf.state, 0)
            base, stride = handle.region
            length = sizeimage(*handle.fmt)
            sequence, stamp = buf.sequence, buf.timestamp_ns
        # bytesused needs the frame (a JPEG may have to be encoded): outside the lock.
        used = self.frames.length(*frame) if frame is not None else 0
        return V4L2_BUFFER.pack(
            buf.index,
            req_type,
            used,
            flags,
            FIELD_NONE,
            stamp // 1_000_000_000,
            stamp % 1_000_000_000 // 1000,
            sequence,
            MEMORY_MMAP,
            base + buf.index * stride,
            0,
            length,
            0,
            0,
            0,
        )

    @staticmethod
    def _nearest_format(spec: dict, inbuf: bytes) -> tuple[str, int, int]:
        """The offered format and size closest to a v4l2_format request (uvcvideo's rule:
        an unknown pixelformat gets the first format; the size minimising the area error)."""
        want_w, want_h, code = struct.unpack_from("=III", inbuf, len(inbuf) - 200)
        formats = spec.get("formats") or []
        if not formats:
            raise Fault(errno.EINVAL)
        fmt = next((f for f in formats if fourcc(f["fourcc"]) == code), formats[0])
        if "stepwise" in fmt:
            sw = fmt["stepwise"]

            def snap(value: int, low: int, high: int, step: int) -> int:
                value = min(max(value, low), high)
                return low + (value - low + step // 2) // step * step if step > 1 else value

            w = snap(want_w, sw["min_width"], sw["max_width"], sw.get("step_width", 1))
            h = snap(want_h, sw["min_height"], sw["max_height"], sw.get("step_height", 1))
            return fmt["fourcc"], w, h
        sizes = fmt.get("sizes") or []
        if not sizes:
            raise Fault(errno.EINVAL)

        def distance(size: dict) -> int:
            w, h = size["width"], size["height"]
            overlap = min(w, want_w) * min(h, want_h)
            return w * h + want_w * want_h - 2 * overlap

        best = min(sizes, key=distance)
        return fmt["fourcc"], best["width"], best["height"]

    @staticmethod
    def _intervals(spec: dict, code: str, w: int, h: int) -> tuple[list[list[int]], Any]:
        for fmt in spec.get("formats") or []:
            if fmt["fourcc"] != code:
                continue
            if "stepwise" in fmt:
                return fmt.get("intervals", []), fmt.get("interval_range")
            for size in fmt.get("sizes", []):
                if (size["width"], size["height"]) == (w, h):
                    return size.get("intervals", []), size.get("interval_range")
        return [], None

    def _nearest_interval(self, spec: dict, code: str, w: int, h: int, asked: Any) -> Any:
        """The offered frame interval of (code, w, h) nearest to `asked` ([num, den])."""
        intervals, ival_range = self._intervals(spec, code, w, h)
        if not asked:
            return list(intervals[0]) if intervals else asked
        want = asked[0] / asked[1]
        if ival_range is not None:
            lo, hi = ival_range["min"], ival_range["max"]
            step = ival_range.get("step")
            value = min(max(want, lo[0] / lo[1]), hi[0] / hi[1])
            if step:
                # Grid points are min + k * step: keep them as exact fractions num/den.
                den = lo[1] * step[1]
                k = round((value - lo[0] / lo[1]) / (step[0] / step[1]))
                num = lo[0] * step[1] + k * step[0] * lo[1]
                return _reduce(num, den)
            return [round(value * 1000), 1000]
        if not intervals:
            return asked

        best = min(intervals, key=lambda i: abs(i[0] / i[1] - want))
        return list(best)

    def _default_interval(self, spec: dict, fmt: tuple[str, int, int]) -> list[int]:
        intervals, ival_range = self._intervals(spec, *fmt)
        if intervals:
            return list(intervals[0])
        if ival_range is not None:
            return list(ival_range["min"])
        return [1, 30]

    def _free_buffers(self, handle: Handle) -> None:
        """REQBUFS(0) or close: stop, drop the buffers, give the node free (caller holds _mu)."""
        self.streaming.discard(handle)
        handle.streaming = False
        handle.buffers = []
        handle.queued.clear()
        handle.done.clear()
        if handle.node.owner is handle:
            handle.node.owner = None

    def _stop_streaming(self, handle: Handle, wake: list[int]) -> None:
        """STREAMOFF: pacing stops and every buffer is back with the application (dequeued)."""
        self.streaming.discard(handle)
        handle.streaming = False
        for buf in handle.buffers:
            buf.state = DEQUEUED
        handle.queued.clear()
        handle.done.clear()
        if handle.pollhandle is not None:
            wake.append(handle.pollhandle)
            handle.pollhandle = None

    # ---- the pacer: frames at the frame interval -------------------------------------------------

    def _start_pacer(self) -> None:
        # Caller holds _mu.
        self._pacer_gen += 1
        if self._pacer is None:
            self._pacer = threading.Thread(target=self._pace, name="pacer", daemon=True)
            self._pacer.start()
        self._pacer_cv.notify_all()

    def _pace(self) -> None:
        while True:
            wake: list[int] = []
            with self._mu:
                if self._stopping:
                    return
                now = time.monotonic_ns()
                timeout = None
                for handle in list(self.streaming):
                    if handle.dead or not handle.streaming:
                        self.streaming.discard(handle)
                        continue
                    produced = 0
                    for _ in range(100):
                        if handle.next_due > now:
                            break
                        produced += self._tick(handle, handle.next_due)
                        handle.next_due += handle.interval_ns
                    if handle.next_due <= now:  # far behind (a stopped VM): skip ahead
                        handle.next_due = now + handle.interval_ns
                    if produced and handle.pollhandle is not None:
                        wake.append(handle.pollhandle)
                        handle.pollhandle = None
                    wait = (handle.next_due - now) / 1e9
                    timeout = wait if timeout is None else min(timeout, wait)
                gen = self._pacer_gen
            self._notify(wake)
            with self._mu:
                if self._stopping:
                    return
                if gen == self._pacer_gen:
                    self._pacer_cv.wait(timeout)

    def _tick(self, handle: Handle, stamp: int) -> bool:
        """One frame of the camera at time `stamp` (caller holds _mu); True if delivered."""
        stall = ((handle.node.spec or {}).get("faults") or {}).get("stall_after_frames")
        if stall is not None and handle.delivered >= int(stall):
            return False  # the camera went quiet: no frame, no error, no sequence number
        sequence = handle.sequence
        handle.sequence += 1
        if not handle.queued:
            return False  # dropped: the sequence number is used up all the same
        buf = handle.buffers[handle.queued.popleft()]
        buf.state = DONE
        buf.sequence = sequence
        buf.timestamp_ns = stamp
        handle.done.append(buf.index)
        handle.delivered += 1
        return True


def _reduce(num: int, den: int) -> list[int]:
    g = math.gcd(num, den) or 1
    return [num // g, den // g]


def _pack_pix(out: bytearray, at: int, code: str, w: int, h: int) -> None:
    """v4l2_pix_format: width height pixelformat field bytesperline sizeimage colorspace priv."""
    PIX_FORMAT.pack_into(
        out,
        at,
        w,
        h,
        fourcc(code),
        FIELD_NONE,
        bytesperline(code, w),
        sizeimage(code, w, h),
        COLORSPACE_SRGB,
        PIX_FMT_PRIV_MAGIC,
    )


def _norm(path: str) -> str:
    return "/" + path.strip("/")


class _ControlHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        fs: FakeCamFS = self.server.fs  # type: ignore[attr-defined]
        for line in self.rfile:
            try:
                reply = fs.command(json.loads(line))
            except Exception as exc:  # a bad request must not kill the control thread
                log.exception("control request failed")
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()


class _ControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _unmount_when_parent_exits(fd: int, mountpoint: str) -> None:
    # Blocks until the parent's end of the pipe closes, which happens however the parent ends
    # (even SIGKILL), so a crashed test run cannot leave a mount and a daemon behind.
    while True:
        try:
            if not os.read(fd, 1):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    log.info("parent gone: unmounting %s", mountpoint)
    import subprocess

    subprocess.run(["fusermount3", "-uz", mountpoint], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mountpoint")
    parser.add_argument("control_socket")
    parser.add_argument("--log", default=None)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--parent-fd",
        type=int,
        default=None,
        help="read end of a pipe held by the parent: EOF (parent gone) unmounts",
    )
    args = parser.parse_args(argv)
    mountpoint = os.path.abspath(args.mountpoint)
    control = os.path.abspath(args.control_socket)
    logging.basicConfig(
        filename=os.path.abspath(args.log) if args.log else None,
        level=logging.INFO,
        format="%(asctime)s %(threadName)s %(levelname)s %(message)s",
    )
    fs = FakeCamFS()
    fs.verbose = args.verbose
    if os.path.exists(control):
        os.unlink(control)
    server = _ControlServer(control, _ControlHandler)
    server.fs = fs  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, name="control", daemon=True).start()
    if args.parent_fd is not None:
        threading.Thread(
            target=_unmount_when_parent_exits,
            args=(args.parent_fd, mountpoint),
            name="parent-watch",
            daemon=True,
        ).start()
    log.info("serving %s, control socket %s", mountpoint, control)
    try:
        mfusepy.FUSE(
            fs,
            mountpoint,
            foreground=True,
            fsname="fakecamfs",
            # Unlink must really remove the name (no .fuse_hidden files in the device dir).
            hard_remove=True,
            # Never cache lookups: the test adds nodes behind the kernel's back via the socket.
            entry_timeout=0,
            attr_timeout=0,
            negative_timeout=0,
        )
    except RuntimeError as exc:
        # mfusepy raises RuntimeError(code) when fuse_main fails or ends on a signal.
        log.error("fuse_main ended with %s", exc)
        return 1
    finally:
        fs._wake_hung()
        # No server.shutdown(): it waits out serve_forever's poll interval; the control thread
        # is a daemon thread and ends with the process.
        server.server_close()
        try:
            os.unlink(control)
        except FileNotFoundError:
            pass
        log.info("unmounted %s", mountpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
