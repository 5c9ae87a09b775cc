"""The FUSE fake cameras stream like a UVC camera, checked with clients independent of the
project's capture code: a tiny V4L2 client written here (os.open, fcntl.ioctl, mmap,
select.poll, with its own struct layouts) and Debian's ffmpeg."""

from __future__ import annotations

import errno
import fcntl
import io
import json
import mmap
import os
import select
import shutil
import struct
import subprocess
import threading
import time

import pytest

from camera_service.testing import fakecams

pytestmark = pytest.mark.fuse

# ioctl numbers and struct layouts from <linux/videodev2.h> (LP64), written out independently.
VIDIOC_G_FMT = 0xC0D05604
VIDIOC_S_FMT = 0xC0D05605
VIDIOC_TRY_FMT = 0xC0D05640
VIDIOC_G_PARM = 0xC0CC5615
VIDIOC_S_PARM = 0xC0CC5616
VIDIOC_REQBUFS = 0xC0145608
VIDIOC_QUERYBUF = 0xC0585609
VIDIOC_QBUF = 0xC058560F
VIDIOC_DQBUF = 0xC0585611
VIDIOC_STREAMON = 0x40045612
VIDIOC_STREAMOFF = 0x40045613
CAPTURE, MMAP, USERPTR = 1, 1, 2
FLAG_MAPPED, FLAG_QUEUED, FLAG_DONE, FLAG_TS_MONOTONIC = 0x1, 0x2, 0x4, 0x2000
REQBUFS = struct.Struct("=IIIIB3x")  # count type memory capabilities flags
# index type bytesused flags field, pad, timestamp (sec usec), timecode, sequence memory,
# m.offset, m (upper half), length reserved2 request_fd reserved
BUFFER = struct.Struct("=IIIII4xqq16xIIIIIIII")
assert REQBUFS.size == 20 and BUFFER.size == 88
PIX = struct.Struct("=IIIIII")  # width height pixelformat field bytesperline sizeimage (at 8)


def fourcc(code: str) -> int:
    return int.from_bytes(code.encode(), "little")


class Buf:
    def __init__(self, raw: bytes) -> None:
        fields = BUFFER.unpack(raw)
        self.index, self.type, self.bytesused, self.flags, self.field = fields[:5]
        self.timestamp = fields[5] + fields[6] / 1e6
        self.sequence, self.memory, self.offset, _, self.length = fields[7:12]


class Client:
    """A minimal V4L2 MMAP capture client."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self.maps: list[mmap.mmap] = []
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLIN)

    def close(self) -> None:
        for m in self.maps:
            m.close()
        self.maps.clear()
        os.close(self.fd)

    def ioctl(self, request: int, arg: bytes) -> bytes:
        buf = bytearray(arg)
        fcntl.ioctl(self.fd, request, buf, True)
        return bytes(buf)

    def set_format(self, code: str, w: int, h: int, request: int = VIDIOC_S_FMT) -> tuple:
        arg = bytearray(208)
        struct.pack_into("=I", arg, 0, CAPTURE)
        struct.pack_into("=III", arg, 8, w, h, fourcc(code))
        return PIX.unpack_from(self.ioctl(request, arg), 8)

    def get_format(self) -> tuple:
        return PIX.unpack_from(self.ioctl(VIDIOC_G_FMT, struct.pack("=I", CAPTURE) + bytes(204)), 8)

    def set_interval(self, num: int, den: int, request: int = VIDIOC_S_PARM) -> tuple[int, int]:
        arg = bytearray(204)
        struct.pack_into("=IIIII", arg, 0, CAPTURE, 0, 0, num, den)
        return struct.unpack_from("=II", self.ioctl(request, arg), 12)

    def reqbufs(self, count: int, memory: int = MMAP, buf_type: int = CAPTURE) -> int:
        return REQBUFS.unpack(
            self.ioctl(VIDIOC_REQBUFS, REQBUFS.pack(count, buf_type, memory, 0, 0))
        )[0]

    def _buf(self, request: int, index: int = 0) -> Buf:
        arg = bytearray(88)
        struct.pack_into("=II", arg, 0, index, CAPTURE)
        struct.pack_into("=I", arg, 60, MMAP)
        return Buf(self.ioctl(request, arg))

    def querybuf(self, index: int) -> Buf:
        return self._buf(VIDIOC_QUERYBUF, index)

    def qbuf(self, index: int) -> Buf:
        return self._buf(VIDIOC_QBUF, index)

    def dqbuf(self) -> Buf:
        return self._buf(VIDIOC_DQBUF)

    def start(self, count: int, queue: bool = True) -> int:
        """REQBUFS + QUERYBUF + mmap (+ QBUF) + STREAMON; returns the buffer count."""
        n = self.reqbufs(count)
        for i in range(n):
            b = self.querybuf(i)
            self.maps.append(
                mmap.mmap(self.fd, b.length, mmap.MAP_SHARED, mmap.PROT_READ, offset=b.offset)
            )
            if queue:
                self.qbuf(i)
        self.stream(VIDIOC_STREAMON)
        return n

    def stream(self, request: int) -> None:
        fcntl.ioctl(self.fd, request, struct.pack("=I", CAPTURE))

    def wait(self, timeout: float) -> int:
        events = self.poller.poll(timeout * 1000)
        return events[0][1] if events else 0

    def next_frame(self, timeout: float = 2.0) -> tuple[Buf, bytes]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no frame in time"
            if self.wait(left) & select.POLLIN:
                b = self.dqbuf()
                return b, self.maps[b.index][: b.bytesused]


@pytest.fixture
def client(fake_cameras):
    clients: list[Client] = []

    def make(spec: dict | None, name: str = "video0") -> Client:
        """Plug `spec` in as `name` and open it; spec None opens the existing node again."""
        c = Client(fake_cameras.add(name, spec) if spec is not None else fake_cameras.path(name))
        clients.append(c)
        return c

    yield make
    for c in clients:
        try:
            c.close()
        except OSError:
            pass


def oserror(func, *args) -> int:
    with pytest.raises(OSError) as info:
        func(*args)
    return info.value.errno


def test_s_fmt_g_fmt_try_fmt_and_s_parm(client):
    c = client(fakecams.streaming_camera())
    assert c.get_format()[:3] == (1280, 720, fourcc("MJPG"))
    # S_FMT answers the offered format and size closest to the request, and G_FMT follows.
    w, h, code, field, bpl, size = c.set_format("YUYV", 600, 500)
    assert (w, h, code, field, bpl, size) == (640, 480, fourcc("YUYV"), 1, 1280, 640 * 480 * 2)
    assert c.get_format() == (640, 480, fourcc("YUYV"), 1, 1280, 640 * 480 * 2)
    mjpg = c.set_format("MJPG", 1280, 720)
    assert mjpg[:5] == (1280, 720, fourcc("MJPG"), 1, 0) and mjpg[5] >= 100_000
    # TRY_FMT: a format the camera lacks gives its first one; nothing changes.
    assert c.set_format("H264", 1920, 1080, VIDIOC_TRY_FMT)[:3] == (1280, 720, fourcc("MJPG"))
    c.set_format("YUYV", 640, 480, VIDIOC_TRY_FMT)
    assert c.get_format()[:3] == (1280, 720, fourcc("MJPG"))
    # S_PARM picks the nearest offered interval; G_PARM reports it.
    assert c.set_interval(1, 15) == (1, 15)
    assert c.set_interval(1, 24) == (1, 30)
    assert c.set_interval(1, 2) == (1, 15)
    assert c.set_interval(0, 0, VIDIOC_G_PARM) == (1, 15)


def test_mjpg_stream_frames_sequence_and_timing(client, fake_cameras):
    c = client(fakecams.streaming_camera())
    n = c.start(4)
    assert n == 4
    offsets = [c.querybuf(i).offset for i in range(n)]
    assert len(set(offsets)) == n and all(o % mmap.PAGESIZE == 0 for o in offsets)
    images: dict[int, bytes] = {}
    frames = []
    start = time.monotonic()
    while time.monotonic() - start < 1.0:
        b, data = c.next_frame()
        assert (
            b.flags & (FLAG_DONE | FLAG_MAPPED | FLAG_TS_MONOTONIC)
            == FLAG_DONE | FLAG_MAPPED | FLAG_TS_MONOTONIC
        )
        assert (b.field, b.memory, b.type) == (1, MMAP, CAPTURE)
        images.setdefault(b.index, data)
        assert images[b.index] == data  # a buffer's frame is fixed
        frames.append(b)
        c.qbuf(b.index)
        if len(frames) == 10:
            # Another open of the node (a probe) drops the page cache: same frames after.
            os.close(os.open(fake_cameras.path("video0"), os.O_RDWR | os.O_NONBLOCK))
    from PIL import Image

    for data in images.values():
        assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"  # bytesused = JPEG length
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "JPEG" and image.size == (1280, 720)
            image.load()
    assert len(images) == n and len(set(images.values())) == n  # one distinct image per buffer
    assert 20 <= len(frames) <= 40, len(frames)
    sequences = [b.sequence for b in frames]
    assert sequences == sorted(set(sequences)) and sequences[0] <= 2
    stamps = [b.timestamp for b in frames]
    assert stamps == sorted(stamps) and stamps[-1] <= time.monotonic()
    deltas = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
    assert 0.02 <= deltas[len(deltas) // 2] <= 0.05  # median interval about 1/30 s
    c.stream(VIDIOC_STREAMOFF)


def test_yuyv_frames(client):
    c = client(fakecams.yuyv_only_camera())
    assert c.get_format()[:3] == (1280, 720, fourcc("YUYV"))
    n = c.start(3)
    seen = {}
    while len(seen) < n:
        b, data = c.next_frame()
        assert b.bytesused == b.length == 1280 * 720 * 2
        seen[b.index] = data
        c.qbuf(b.index)
    assert len(set(seen.values())) == n
    for data in seen.values():
        ys = data[0::2]
        assert min(ys) >= 16 and max(ys) <= 235  # video-range luma
        assert data[: 1280 * 2] * 720 == data  # colour bars: every row the same


def test_format_change_on_the_same_open_file(client):
    # Each (format, size) has its own buffer region: no page cached for the old one shows.
    c = client(fakecams.streaming_camera())
    from PIL import Image

    for code, w, h in (("MJPG", 1280, 720), ("MJPG", 640, 480), ("YUYV", 640, 480)):
        assert c.reqbufs(0) == 0
        for m in c.maps:
            m.close()
        c.maps.clear()
        assert c.set_format(code, w, h)[:3] == (w, h, fourcc(code))
        c.start(2)
        b, data = c.next_frame()
        if code == "MJPG":
            with Image.open(io.BytesIO(data)) as image:
                assert image.size == (w, h)
        else:
            assert b.bytesused == len(data) == w * h * 2
        c.stream(VIDIOC_STREAMOFF)


def test_dropped_frames_show_as_sequence_gaps(client):
    c = client(fakecams.streaming_camera())
    c.start(2)
    time.sleep(0.4)  # ~12 frames: two fill the buffers, the rest are dropped
    first = [c.dqbuf(), c.dqbuf()]
    assert [b.sequence for b in first] == [0, 1]
    assert oserror(c.dqbuf) == errno.EAGAIN
    c.qbuf(first[0].index)
    b, _ = c.next_frame()
    assert b.sequence >= 6, b.sequence


def test_poll_blocks_until_a_buffer_is_done(client):
    c = client(fakecams.streaming_camera())
    assert c.wait(0) & select.POLLERR  # not streaming yet: nothing to wait for (videobuf2)
    c.start(2)
    held = [c.next_frame()[0], c.next_frame()[0]]
    # Every buffer is with the application: poll() must sleep, not report readable.
    start = time.monotonic()
    assert c.wait(0.8) == 0
    assert time.monotonic() - start >= 0.7
    assert oserror(c.dqbuf) == errno.EAGAIN
    with select.epoll() as ep:  # epoll and select take the same FUSE poll path
        ep.register(c.fd, select.EPOLLIN)
        assert ep.poll(0.2) == []
        assert select.select([c.fd], [], [], 0.2)[0] == []
        c.qbuf(held[0].index)
        start = time.monotonic()
        assert c.wait(3.0) & select.POLLIN
        assert time.monotonic() - start < 0.5  # about one frame interval
        assert ep.poll(0) == [(c.fd, select.EPOLLIN)]
    assert c.dqbuf().index == held[0].index


def test_streamoff_returns_every_buffer(client):
    c = client(fakecams.streaming_camera())
    n = c.start(3)
    c.next_frame()
    c.stream(VIDIOC_STREAMOFF)
    for i in range(n):
        assert c.querybuf(i).flags & (FLAG_QUEUED | FLAG_DONE) == 0
    assert oserror(c.dqbuf) == errno.EINVAL
    assert c.qbuf(0).flags & FLAG_QUEUED
    c.stream(VIDIOC_STREAMON)
    b, _ = c.next_frame()
    assert (b.index, b.sequence) == (0, 0)  # the sequence restarts with the stream


def test_second_open_file_is_busy(client, fake_cameras):
    first = client(fakecams.streaming_camera())
    second = client(None)
    assert first.reqbufs(4) == 4
    assert oserror(second.reqbufs, 2) == errno.EBUSY
    assert oserror(second.qbuf, 0) == errno.EBUSY
    assert oserror(second.stream, VIDIOC_STREAMON) == errno.EBUSY
    assert second.querybuf(3).offset == first.querybuf(3).offset  # anyone may look
    assert oserror(second.set_format, "YUYV", 640, 480) == errno.EBUSY
    assert oserror(first.set_format, "YUYV", 640, 480) == errno.EBUSY  # uvcvideo: buffers exist
    assert second.get_format()[:3] == (1280, 720, fourcc("MJPG"))  # reading is fine
    assert first.reqbufs(0) == 0
    assert second.reqbufs(1) == 2  # at least two buffers


def test_reqbufs_only_mmap_capture(client):
    c = client(fakecams.streaming_camera())
    assert oserror(c.reqbufs, 2, USERPTR) == errno.EINVAL
    assert oserror(c.reqbufs, 2, MMAP, 2) == errno.EINVAL  # VIDEO_OUTPUT
    assert c.reqbufs(100) == 32
    assert oserror(c.dqbuf) == errno.EINVAL  # not streaming
    assert oserror(c.querybuf, 32) == errno.EINVAL


def test_streamon_fault_answers_eio(client):
    c = client(fakecams.streamon_fails_camera())
    with pytest.raises(OSError) as info:
        c.start(2)
    assert info.value.errno == errno.EIO


def test_stalling_camera_stops_after_n_frames(client):
    c = client(fakecams.stalling_camera(frames=3))
    c.start(4)
    for expected in range(3):
        b, _ = c.next_frame()
        assert b.sequence == expected
        c.qbuf(b.index)
    assert c.wait(0.5) == 0  # quiet, no error
    assert oserror(c.dqbuf) == errno.EAGAIN


def test_unplug_wakes_a_blocked_poll_then_enodev(client, fake_cameras):
    c = client(fakecams.streaming_camera())
    c.start(2)
    held = [c.next_frame()[0], c.next_frame()[0]]
    assert len(held) == 2
    result: dict = {}

    def waiter() -> None:
        start = time.monotonic()
        result["events"] = c.wait(10.0)
        result["took"] = time.monotonic() - start

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()  # really blocked in poll()
    fake_cameras.remove("video0")
    thread.join(5)
    assert not thread.is_alive()
    assert result["events"] & (select.POLLERR | select.POLLHUP) == select.POLLERR | select.POLLHUP
    assert result["took"] < 2.0
    assert oserror(c.dqbuf) == errno.ENODEV
    assert oserror(c.qbuf, 0) == errno.ENODEV
    assert oserror(c.stream, VIDIOC_STREAMOFF) == errno.ENODEV


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="Debian's ffmpeg/ffprobe are not installed (make system-deps)",
)
def test_ffmpeg_records_the_fake_camera(fake_cameras, tmp_path):
    path = fake_cameras.add("video0", fakecams.streaming_camera())
    out = tmp_path / "out.mkv"
    run = subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
            "-f", "v4l2", "-input_format", "mjpeg", "-video_size", "640x480", "-i", path,
            "-frames:v", "5", "-c", "copy", "-y", str(out),
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    probe = subprocess.run(
        [
            "ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
            "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json",
            str(out),
        ],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    (stream,) = json.loads(probe.stdout)["streams"]
    assert stream == {"codec_name": "mjpeg", "width": 640, "height": 480, "nb_read_frames": "5"}
