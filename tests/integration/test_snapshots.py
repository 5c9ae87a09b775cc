"""take_snapshot end to end (PROTOCOL 5.8, 5.9): the real service captures from FUSE fake
cameras through its cffi streaming code (REQBUFS/mmap/QBUF/DQBUF, poll); files are checked
with an independent decoder (Pillow)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from conftest import mint_token, wait_until, ws_url
from PIL import Image

from camera_service.client import RpcCallError, RpcClient
from camera_service.core.events import SnapshotTaken
from camera_service.media.capture import CaptureError
from camera_service.testing import fakecams

pytestmark = pytest.mark.fuse

RESULT_KEYS = [
    "device",
    "filename",
    "status",
    "timestamp",
    "file_size",
    "file_path",
    "download_url",
    "format",
    "resolution",
    "storage_warning",
]
ISO_MS_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


@pytest.fixture
async def camera_app(start_app, fake_cameras):
    """A service on the fake mount with a streaming MJPG camera (video0) and a YUYV-only one
    (video2); returns (app, operator client)."""
    fake_cameras.add("video0", fakecams.streaming_camera())
    fake_cameras.add("video2", fakecams.yuyv_only_camera())
    clients = []

    async def start(extra=None):
        overrides = {"camera": {"device_dir": fake_cameras.dev_dir}}
        for section, values in (extra or {}).items():
            overrides.setdefault(section, {}).update(values)
        app = await start_app(overrides)
        await app.monitor.wait_ready(10)
        client = await RpcClient.connect(ws_url(app))
        clients.append(client)
        await client.authenticate(mint_token("operator"))
        return app, client

    yield start
    for client in clients:
        await client.close()


def image_of(path: str) -> Image.Image:
    with open(path, "rb") as fh:
        return Image.open(io.BytesIO(fh.read()))


async def error_of(client: RpcClient, method: str, params: dict) -> RpcCallError:
    with pytest.raises(RpcCallError) as info:
        await client.call(method, params)
    return info.value


async def test_mjpg_snapshot_is_the_cameras_own_jpeg(camera_app):
    app, client = await camera_app()
    events = app.bus.stream(SnapshotTaken)
    result = await client.call("take_snapshot", {"device": "camera0"})
    assert list(result) == RESULT_KEYS
    device = os.path.join(app.config.camera.device_dir, "video0")
    assert result["device"] == device
    assert re.fullmatch(
        r"camera0_snapshot_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}(_\d+)?\.jpg", result["filename"]
    )
    assert (result["status"], result["format"], result["resolution"]) == (
        "completed",
        "jpg",
        "1280x720",
    )
    assert ISO_MS_Z.fullmatch(result["timestamp"])
    assert result["file_path"] == os.path.join(
        os.path.abspath(app.config.snapshots.path), result["filename"]
    )
    assert result["download_url"] == "/files/snapshots/" + result["filename"]
    assert result["storage_warning"] is False
    image = image_of(result["file_path"])
    assert (image.format, image.size) == ("JPEG", (1280, 720))
    assert os.path.getsize(result["file_path"]) == result["file_size"]
    event = await asyncio.wait_for(anext(events), 2)
    assert (event.filename, event.file_size) == (result["filename"], result["file_size"])
    events.close()
    # Quality does not touch an MJPG camera's frames: they are written byte for byte, so every
    # snapshot is one of the camera's few distinct buffers.
    contents = set()
    for quality in (5, 50, 100, 5, 50, 100):
        shot = await client.call("take_snapshot", {"device": device, "quality": quality})
        with open(shot["file_path"], "rb") as fh:
            contents.add(fh.read())
    assert len(contents) <= app.config.capture.buffers


async def test_yuyv_snapshot_is_encoded_with_the_requested_quality(camera_app):
    app, client = await camera_app()
    low = await client.call(
        "take_snapshot", {"device": "camera2", "quality": 10, "filename": "low"}
    )
    high = await client.call(
        "take_snapshot", {"device": "camera2", "quality": 95, "filename": "high.jpg"}
    )
    assert (low["filename"], high["filename"]) == ("low.jpg", "high.jpg")
    for result in (low, high):
        image = image_of(result["file_path"])
        assert (image.format, image.size) == ("JPEG", (1280, 720))
    assert high["file_size"] > low["file_size"]
    png = await client.call("take_snapshot", {"device": "camera2", "format": "png"})
    assert png["filename"].endswith(".png") and png["format"] == "png"
    image = image_of(png["file_path"])
    assert (image.format, image.size, image.mode) == ("PNG", (1280, 720), "RGB")


async def test_same_filename_is_replaced_and_default_names_get_a_suffix(camera_app):
    app, client = await camera_app()
    first = await client.call("take_snapshot", {"device": "camera0", "filename": "door.jpg"})
    second = await client.call("take_snapshot", {"device": "camera2", "filename": "door.jpg"})
    assert first["file_path"] == second["file_path"]
    assert image_of(second["file_path"]).size == (1280, 720)
    directory = os.path.abspath(app.config.snapshots.path)
    assert [n for n in os.listdir(directory) if n.startswith(".")] == []  # no temporary left
    # Occupy the default names of this second and the next: the snapshot must not replace them.
    now = time.time()
    for moment in (now, now + 1):
        stamp = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d_%H-%M-%S")
        with open(os.path.join(directory, f"camera0_snapshot_{stamp}.jpg"), "wb") as fh:
            fh.write(b"keep")
    result = await client.call("take_snapshot", {"device": "camera0"})
    assert result["filename"].endswith("_2.jpg"), result["filename"]


async def test_errors_in_protocol_order(camera_app, fake_cameras):
    fake_cameras.add("video4", fakecams.streamon_fails_camera())
    app, client = await camera_app()
    bad = await error_of(client, "take_snapshot", {"device": "camera0", "format": "gif"})
    assert (bad.code, bad.message) == (-32602, "Invalid parameters")
    bad = await error_of(client, "take_snapshot", {"device": "camera9", "quality": 0})
    assert bad.code == -32602  # params before camera
    missing = await error_of(client, "take_snapshot", {"device": "camera9"})
    assert (missing.code, missing.message) == (-1000, "Camera not found")
    broken = await error_of(client, "take_snapshot", {"device": "camera4"})
    assert (broken.code, broken.message) == (-1001, "Camera not available")
    assert "VIDIOC_STREAMON" in broken.data["reason"]
    viewer = await RpcClient.connect(ws_url(app))
    await viewer.authenticate(mint_token("viewer"))
    denied = await error_of(viewer, "take_snapshot", {"device": "camera0"})
    assert (denied.code, denied.data["required_role"]) == (-32003, "operator")
    await viewer.close()
    # The failed capture left nothing behind: the camera still works for the next request.
    assert (await client.call("take_snapshot", {"device": "camera0"}))["status"] == "completed"


async def test_a_camera_that_stops_sending_frames_is_1001_after_frame_timeout(
    camera_app, fake_cameras
):
    fake_cameras.add("video5", fakecams.stalling_camera(frames=0))
    app, client = await camera_app({"capture": {"frame_timeout": 0.5}})
    started = time.monotonic()
    stalled = await error_of(client, "take_snapshot", {"device": "camera5"})
    assert (stalled.code, stalled.message) == (-1001, "Camera not available")
    assert "no frame" in stalled.data["reason"]
    assert time.monotonic() - started < 3


async def test_storage_thresholds(camera_app):
    app, client = await camera_app({"storage": {"warn_percent": 1, "block_percent": 100}})
    result = await client.call("take_snapshot", {"device": "camera0"})
    assert result["storage_warning"] is True
    app2, client2 = await camera_app({"storage": {"warn_percent": 1, "block_percent": 1}})
    critical = await error_of(client2, "take_snapshot", {"device": "camera0"})
    assert (critical.code, critical.message) == (-1010, "Storage space is critical")


async def test_one_shared_capture_that_stops_when_idle(camera_app, fake_cameras):
    app, client = await camera_app({"capture": {"idle_stop_seconds": 0.3}})
    results = await asyncio.gather(
        *(client.call("take_snapshot", {"device": "camera0"}) for _ in range(5))
    )
    assert {r["status"] for r in results} == {"completed"}
    assert len(app.captures.captures) == 1
    capture = next(iter(app.captures.captures.values()))
    await wait_until(lambda: not app.captures.captures, 5, "the idle capture to stop")
    await capture.join()
    assert not capture._thread.is_alive()
    # Released: another program may stream from the camera now.
    await asyncio.get_running_loop().run_in_executor(
        None, _independent_reqbufs, fake_cameras.path("video0")
    )


def _independent_reqbufs(path: str) -> None:
    import fcntl
    import struct

    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        req = bytearray(struct.pack("=IIII4x", 2, 1, 1, 0))
        fcntl.ioctl(fd, 0xC0145608, req)  # VIDIOC_REQBUFS, 2 MMAP buffers
        fcntl.ioctl(fd, 0xC0145608, bytearray(struct.pack("=IIII4x", 0, 1, 1, 0)))
    finally:
        os.close(fd)


async def test_unplug_ends_consumers_and_replug_works(camera_app, fake_cameras):
    app, client = await camera_app()
    camera = app.monitor.get("camera0")
    subscription = await app.captures.subscribe(camera)
    await subscription.next_frame(5)
    capture = subscription.capture
    fds_before = len(os.listdir("/proc/self/fd"))
    fake_cameras.remove("video0")
    with pytest.raises(CaptureError, match="unplugged"):
        while True:
            await subscription.next_frame(5)
    subscription.close()
    await capture.join()
    assert not capture._thread.is_alive()
    await wait_until(
        lambda: len(os.listdir("/proc/self/fd")) < fds_before, 5, "the camera fd to be closed"
    )
    fake_cameras.add("video0", fakecams.streaming_camera())
    await wait_until(lambda: app.monitor.get("camera0") is not None, 5, "the re-plug")
    result = await client.call("take_snapshot", {"device": "camera0"})
    assert result["status"] == "completed"


def test_media_libraries_are_not_loaded_by_an_idle_service(tmp_path):
    code = (
        "import asyncio, sys\n"
        "from camera_service.app import Application\n"
        "from camera_service.config import load_config\n"
        f"cfg = load_config(None, env={{}}, overrides={{'server': {{'host': '127.0.0.1', 'port': 0}},"
        f" 'security': {{'jwt_secret': 'x' * 40, 'state_dir': {str(tmp_path)!r}}},"
        f" 'camera': {{'device_dir': {str(tmp_path)!r}}}}})\n"
        "async def main():\n"
        "    app = Application(cfg, env={})\n"
        "    await app.start()\n"
        "    await app.stop()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in ('numpy', 'simplejpeg', 'PIL') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
