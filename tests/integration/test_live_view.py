"""Live view (PROTOCOL 7 `GET /stream/cameraN.mjpeg`) and get_streams (5.16) on the real
service with FUSE fake cameras; parts are decoded with Pillow, the stream read by ffprobe."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import time

import pytest
from conftest import mint_token, parse_head, wait_until, ws_url
from PIL import Image

from camera_service.client import RpcClient
from camera_service.testing import fakecams

pytestmark = pytest.mark.fuse
BOUNDARY = b"--camera-service-frame"


@pytest.fixture
async def live_app(start_app, fake_cameras):
    fake_cameras.add("video0", fakecams.streaming_camera())
    fake_cameras.add("video2", fakecams.yuyv_only_camera())
    fake_cameras.add("video4", fakecams.streamon_fails_camera())

    async def start(extra=None):
        overrides = {
            "camera": {"device_dir": fake_cameras.dev_dir},
            "capture": {"idle_stop_seconds": 0.2},
            **(extra or {}),
        }
        app = await start_app(overrides)
        await app.monitor.wait_ready(10)
        return app

    return start


class Viewer:
    """A raw HTTP client reading the multipart body part by part (chunked decoding by hand)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.body = bytearray()
        self.ended = False

    @classmethod
    async def open(cls, port: int, path: str, **headers: str):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        viewer = cls(reader, writer)
        viewer.status, viewer.headers = parse_head(head.rstrip(b"\r\n"))
        return viewer

    async def _chunk(self) -> None:
        size = int((await asyncio.wait_for(self.reader.readline(), 10)).strip(), 16)
        data = await self.reader.readexactly(size + 2)
        if size == 0:
            self.ended = True
        self.body += data[:-2]

    async def part(self) -> bytes:
        """The next JPEG part."""
        while True:
            start = self.body.find(BOUNDARY)
            if start >= 0:
                head_end = self.body.find(b"\r\n\r\n", start)
                if head_end >= 0:
                    head = bytes(self.body[start:head_end]).decode()
                    self.last_head = head
                    length = int(head.split("Content-Length: ")[1].split("\r\n")[0])
                    end = head_end + 4 + length
                    if len(self.body) >= end + 2:
                        data = bytes(self.body[head_end + 4 : end])
                        del self.body[: end + 2]
                        return data
            if self.ended:
                raise EOFError("stream ended")
            await self._chunk()

    def close(self) -> None:
        self.writer.close()


async def test_mjpeg_parts_are_the_cameras_jpegs(live_app):
    app = await live_app()
    token = mint_token("viewer")
    viewer = await Viewer.open(app.port, f"/stream/camera0.mjpeg?token={token}")
    assert viewer.status == 200
    assert (
        viewer.headers["content-type"] == "multipart/x-mixed-replace; boundary=camera-service-frame"
    )
    sizes = set()
    for _ in range(5):
        image = Image.open(io.BytesIO(await viewer.part()))
        sizes.add((image.format, image.size))
        # Each part says when its frame left the driver (epoch seconds, ms).
        stamp = float(viewer.last_head.split("X-Timestamp: ")[1].split("\r\n")[0])
        assert 0 <= time.time() - stamp < 5
    assert sizes == {("JPEG", (1280, 720))}
    viewer.close()
    await wait_until(lambda: not app.captures.captures, 5, "the capture to stop after the viewer")


async def test_yuyv_is_encoded_once_per_frame_for_all_viewers(live_app):
    app = await live_app()
    headers = {"Authorization": f"Bearer {mint_token('viewer')}"}
    viewers = [await Viewer.open(app.port, "/stream/camera2.mjpeg", **headers) for _ in range(3)]
    client = await RpcClient.connect(ws_url(app))
    await client.authenticate(mint_token("viewer"))
    for _ in range(10):
        for viewer in viewers:
            assert Image.open(io.BytesIO(await viewer.part())).size == (1280, 720)
    streams = await client.call("get_streams")
    (entry,) = streams
    assert list(entry) == [
        "name",
        "device",
        "source",
        "ready",
        "readers",
        "bytes_sent",
        "format",
        "resolution",
        "fps",
    ]
    assert (entry["name"], entry["source"], entry["ready"], entry["readers"]) == (
        "camera2",
        "v4l2",
        True,
        3,
    )
    assert (entry["format"], entry["resolution"], entry["fps"]) == ("YUYV", "1280x720", 30)
    assert entry["bytes_sent"] > 0
    counts = app.live.viewers[entry["device"]]
    frames = app.captures.captures[entry["device"]].frames
    # Three viewers took 30 parts; each captured frame was encoded at most once.
    assert counts.encodes <= frames
    for viewer in viewers:
        viewer.close()
    await client.close()


async def test_fps_cap_and_errors(live_app):
    app = await live_app()
    token = mint_token("viewer")
    viewer = await Viewer.open(app.port, f"/stream/camera0.mjpeg?fps=4&token={token}")
    await viewer.part()
    started = time.monotonic()
    for _ in range(4):
        await viewer.part()
    assert time.monotonic() - started >= 0.7  # 4 parts at 4 fps, not 30
    viewer.close()
    for path, status in (
        (f"/stream/camera9.mjpeg?token={token}", 404),
        (f"/stream/nope?token={token}", 404),
        (f"/stream/camera0.mjpeg?fps=0&token={token}", 400),
        ("/stream/camera0.mjpeg", 401),
        (f"/stream/camera4.mjpeg?token={token}", 503),
    ):
        other = await Viewer.open(app.port, path)
        assert other.status == status, path
        other.close()


async def test_unplug_ends_the_response_cleanly(live_app, fake_cameras):
    app = await live_app()
    viewer = await Viewer.open(app.port, f"/stream/camera0.mjpeg?token={mint_token('viewer')}")
    await viewer.part()
    fake_cameras.remove("video0")
    with pytest.raises(EOFError):
        while True:
            await viewer.part()
    assert viewer.ended  # the chunked terminator arrived: a clean end, not a reset
    viewer.close()
    await wait_until(lambda: app.table.http_open == 0, 5, "the connection to close")


async def test_a_viewer_that_does_not_read_holds_back_nobody(live_app):
    app = await live_app()
    token = mint_token("viewer")
    stalled = await Viewer.open(app.port, f"/stream/camera2.mjpeg?token={token}")
    reader = await Viewer.open(app.port, f"/stream/camera2.mjpeg?token={token}")
    started = time.monotonic()
    for _ in range(20):
        await reader.part()
    assert time.monotonic() - started < 5
    stalled.close()
    reader.close()


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="Debian ffprobe is not installed")
async def test_ffprobe_reads_the_live_view(live_app):
    app = await live_app()
    url = f"http://127.0.0.1:{app.port}/stream/camera0.mjpeg?token={mint_token('viewer')}"
    cmd = [
        "ffprobe",
        "-v",
        "error",
        "-f",
        "mpjpeg",
        "-show_entries",
        "stream=codec_name,width,height",
        "-of",
        "csv=p=0",
        url,
    ]
    out = await asyncio.get_running_loop().run_in_executor(
        None, lambda: subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    )
    assert out.stdout.strip() == "mjpeg,1280,720", out.stderr
