"""RTSP publishing (PROTOCOL 10) to a real receiver that no one here wrote: Debian's
`ffmpeg -rtsp_flags listen` plays the media server (it accepts one publisher) and decodes what
the service sends; killing and restarting it proves the reconnect."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
from conftest import mint_token, wait_until, ws_url
from PIL import Image

from camera_service.client import RpcClient
from camera_service.media import publisher as publisher_module
from camera_service.media.publisher import retry_delays
from camera_service.media.rtsp_push import PushError, jpeg_pixel_format
from camera_service.testing import fakecams

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="Debian ffmpeg is not installed"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """`ffmpeg` listening for one RTSP publisher, decoding every frame to PNG files."""

    def __init__(self, port: int, stream: str, out_dir: str, frames: int = 10) -> None:
        self.out_dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.log_path = os.path.join(out_dir, "ffmpeg.log")
        self.proc = subprocess.Popen(
            [
                "ffmpeg",
                "-hide_banner",
                "-nostdin",
                "-rtsp_flags",
                "listen",
                "-timeout",
                "60",
                "-i",
                f"rtsp://127.0.0.1:{port}/{stream}",
                "-frames:v",
                str(frames),
                "-y",
                os.path.join(out_dir, "frame%03d.png"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "wb"),  # noqa: SIM115 - closed with the process
        )

    async def wait_listening(self, port: int) -> None:
        # Read the kernel's socket table rather than connect: ffmpeg's listen mode takes the
        # first connection as its publisher, so a probe connection would use it up.
        def listening() -> bool:
            with open("/proc/net/tcp") as f:
                rows = [line.split() for line in f.readlines()[1:]]
            return any(r[1].endswith(f":{port:04X}") and r[3] == "0A" for r in rows)

        deadline = time.monotonic() + 10
        while not listening():
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, "ffmpeg did not start listening"
            await asyncio.sleep(0.05)

    async def wait_done(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"no frames arrived:\n{self.log()}"
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def frames(self) -> list[Image.Image]:
        names = sorted(n for n in os.listdir(self.out_dir) if n.endswith(".png"))
        return [Image.open(os.path.join(self.out_dir, n)) for n in names]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-3000:]


# Connecting to a port where the listener has not yet bound must not wait long between tries.
@pytest.fixture(autouse=True)
def quick_first_retry(monkeypatch):
    monkeypatch.setattr(publisher_module, "FIRST_RETRY_SECONDS", 0.3)


@pytest.fixture
async def publish_app(start_app, fake_cameras, tmp_path):
    fake_cameras.add("video0", fakecams.streaming_camera())
    fake_cameras.add("video2", fakecams.yuyv_only_camera())
    receivers: list[Receiver] = []
    port = free_port()

    async def start(publish_on: str, cameras: tuple[int, ...] = (0,), idle_stop: float = 0.3):
        # One ffmpeg listener takes whichever publisher comes first, whatever its path: only
        # the camera under test is in the device range.
        app = await start_app(
            {
                "camera": {"device_dir": fake_cameras.dev_dir, "device_range": list(cameras)},
                "capture": {"idle_stop_seconds": idle_stop},
                "media": {
                    "host": "127.0.0.1",
                    "rtsp_port": port,
                    "publish_rtsp": True,
                    "publish_on": publish_on,
                },
            }
        )
        await app.monitor.wait_ready(10)
        return app

    async def receiver(stream: str, name: str, frames: int = 10) -> Receiver:
        rx = Receiver(port, stream, str(tmp_path / name), frames)
        receivers.append(rx)
        await rx.wait_listening(port)
        return rx

    start.port = port
    start.receiver = receiver
    yield start
    for rx in receivers:
        rx.kill()


def test_retry_delays_double_from_one_second_up_to_thirty():
    delays = retry_delays(1.0, 30.0)
    assert [next(delays) for _ in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]


@pytest.mark.parametrize(("subsampling", "expected"), [(2, "yuvj420p"), (1, "yuvj422p")])
def test_jpeg_pixel_format_follows_the_luma_sampling(subsampling, expected):
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(out, "JPEG", subsampling=subsampling)
    assert jpeg_pixel_format(out.getvalue()) == expected


@pytest.mark.parametrize("data", [b"", b"\xff\xd8", b"\xff\xd8\xff\xda\x00\x02", b"not a jpeg"])
def test_jpeg_pixel_format_refuses_what_rfc2435_cannot_carry(data):
    with pytest.raises(PushError):
        jpeg_pixel_format(data)


async def test_demand_publishes_while_another_consumer_captures(publish_app):
    app = await publish_app("demand")
    rx = await publish_app.receiver("camera0", "demand", frames=30)
    client = await RpcClient.connect(ws_url(app))
    await client.authenticate(mint_token("operator"))
    # No consumer: nothing is captured, so nothing is published.
    await asyncio.sleep(0.5)
    assert await client.call("get_streams") == []
    assert app.publisher.publishers == {}

    # A snapshot starts the capture; a consumer keeps it running; the publisher rides on it.
    await client.call("take_snapshot", {"device": "camera0"})
    viewer = asyncio.create_task(keep_capturing(app, "camera0", seconds=8))
    try:
        device = app.monitor.get("camera0").device
        await wait_until(
            lambda: (app.publisher.stats(device) or {}).get("state") == "publishing",
            10,
            "the publisher to connect",
        )
        (entry,) = await client.call("get_streams")
        assert entry["publisher"]["state"] == "publishing"
        assert entry["publisher"]["url"] == f"rtsp://127.0.0.1:{publish_app.port}/camera0"
        assert entry["publisher"]["connects"] == 1
        assert entry["readers"] == 1  # the publisher; no live viewer
        assert entry["bytes_sent"] == entry["publisher"]["bytes_sent"] > 0
        assert await rx.wait_done() == 0
        frames = rx.frames()
        assert len(frames) == 30
        assert {f.size for f in frames} == {(1280, 720)}
    finally:
        viewer.cancel()
    # The last consumer left: the capture stops, and the publisher with it.
    await wait_until(lambda: not app.captures.captures, 5, "the capture to stop")
    await wait_until(lambda: not app.publisher.publishers, 5, "the publisher to stop")
    assert not [t for t in threading.enumerate() if t.name == "rtsp-camera0"]
    await client.close()


async def keep_capturing(app, name: str, seconds: float) -> None:
    """A consumer of the camera's capture for `seconds` (as a live viewer would be)."""
    camera = app.monitor.get(name)
    subscription = await app.captures.subscribe(camera)
    try:
        await asyncio.sleep(seconds)
    finally:
        subscription.close()


async def test_always_publishes_without_consumers_and_reconnects(publish_app):
    app = await publish_app("always")
    client = await RpcClient.connect(ws_url(app))
    await client.authenticate(mint_token("viewer"))

    # No server yet: the publisher retries, the capture and the API carry on.
    await wait_until(
        lambda: (
            app.publisher.stats(app.monitor.get("camera0").device) is not None
            and app.publisher.stats(app.monitor.get("camera0").device)["state"] == "retrying"
        ),
        10,
        "the publisher to retry without a server",
    )
    assert await client.call("ping") == "pong"
    entry = next(e for e in await client.call("get_streams") if e["name"] == "camera0")
    assert entry["readers"] == 0
    assert entry["publisher"]["last_error"]

    rx = await publish_app.receiver("camera0", "first")
    assert await rx.wait_done() == 0
    assert len(rx.frames()) == 10

    # The server goes away mid-stream (ffmpeg exits after its frames): the publisher notices,
    # backs off and reconnects to the next server on the same port.
    rx2 = await publish_app.receiver("camera0", "second")
    assert await rx2.wait_done() == 0
    assert {f.size for f in rx2.frames()} == {(1280, 720)}
    device = app.monitor.get("camera0").device
    assert app.publisher.stats(device)["connects"] >= 2
    await client.close()


async def test_yuyv_camera_is_published_as_jpeg(publish_app):
    app = await publish_app("always", cameras=(2,))
    rx = await publish_app.receiver("camera2", "yuyv", frames=5)
    assert await rx.wait_done() == 0
    frames = rx.frames()
    assert len(frames) == 5
    assert frames[0].size == (1280, 720)
    device = app.monitor.get("camera2").device
    await wait_until(
        lambda: app.publisher.stats(device)["frames_sent"] >= 5, 5, "the publisher's report"
    )


async def test_unplug_ends_the_publisher_and_replug_publishes_again(publish_app, fake_cameras):
    app = await publish_app("always")
    device = app.monitor.get("camera0").device
    await wait_until(lambda: app.publisher.stats(device) is not None, 10, "a publisher")
    fake_cameras.remove("video0")
    await wait_until(lambda: app.publisher.stats(device) is None, 5, "the publisher to end")
    await wait_until(
        lambda: not [t for t in threading.enumerate() if t.name == "rtsp-camera0"],
        5,
        "the publisher thread to end",
    )
    fake_cameras.add("video0", fakecams.streaming_camera())
    rx = await publish_app.receiver("camera0", "replug", frames=3)
    assert await rx.wait_done() == 0
    assert len(rx.frames()) == 3


async def test_turning_publishing_off_live_stops_every_publisher(publish_app):
    app = await publish_app("always", cameras=(0, 2))
    await wait_until(lambda: len(app.publisher.publishers) == 2, 10, "two publishers")
    media = dataclasses.replace(app.config.media, publish_rtsp=False)
    app._on_config_change(app.config, dataclasses.replace(app.config, media=media), set())
    assert app.publisher.publishers == {}
    await wait_until(lambda: not app.captures.captures, 5, "the captures to go idle")


async def test_a_silent_server_never_stalls_the_service(publish_app, monkeypatch):
    """A server that accepts the connection and never answers keeps FFmpeg waiting inside the
    RTSP handshake; that happens in the publisher's own process, so the API stays responsive
    and the publisher gives up after its timeout and retries."""
    monkeypatch.setattr(publisher_module, "IO_TIMEOUT_SECONDS", 1.0)
    silent = socket.socket()
    silent.bind(("127.0.0.1", publish_app.port))
    silent.listen()
    try:
        app = await publish_app("always")
        client = await RpcClient.connect(ws_url(app))
        await client.authenticate(mint_token("viewer"))
        device = app.monitor.get("camera0").device
        await wait_until(
            lambda: (app.publisher.stats(device) or {}).get("state") == "connecting",
            10,
            "the publisher to start connecting",
        )
        worst = 0.0
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            started = time.monotonic()
            assert await client.call("ping") == "pong"
            worst = max(worst, time.monotonic() - started)
            await asyncio.sleep(0.02)
        # Generous for a loaded CI machine; a stall would be the whole handshake timeout.
        assert worst < 0.9
        await wait_until(
            lambda: app.publisher.stats(device)["state"] == "retrying",
            5,
            "the publisher to give up on the silent server",
        )
        assert app.publisher.stats(device)["last_error"]
        await client.close()
    finally:
        silent.close()
