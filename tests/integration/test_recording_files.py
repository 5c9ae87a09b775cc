"""Recording files (PROTOCOL 5.12-5.14, 7): list/info/delete over the recordings index,
downloads with Range, storage info and thresholds, a full disk during a recording (a real
tmpfs of a few MB) and a `kill -9` in the middle of a segment (the service as a subprocess);
written files are checked with Debian's ffprobe/ffmpeg."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TEST_JWT_SECRET, mint_token, wait_until, ws_url
from test_recordings import Notes, decodes, probe
from test_snapshot_files import fetch

from camera_service.client import RpcCallError, RpcClient
from camera_service.testing import fakecams

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(shutil.which("ffprobe") is None, reason="Debian ffmpeg/ffprobe needed"),
]

FILE_KEYS = ["filename", "file_size", "modified_time", "download_url", "duration", "device"]
STORAGE_KEYS = [
    "total_space",
    "used_space",
    "available_space",
    "used_percent",
    "warn_threshold",
    "block_threshold",
    "recordings_size",
    "snapshots_size",
    "recordings_count",
    "snapshots_count",
    "low_space_warning",
    "critical_space_warning",
]


@pytest.fixture
async def service(start_app, fake_cameras):
    """`await service(overrides)` -> (app, admin client) with an MJPG camera (video0)."""
    fake_cameras.add("video0", fakecams.streaming_camera())
    clients = []

    async def start(extra=None):
        overrides = {"camera": {"device_dir": fake_cameras.dev_dir}, "logging": {"level": "info"}}
        for section, values in (extra or {}).items():
            overrides.setdefault(section, {}).update(values)
        app = await start_app(overrides)
        await app.monitor.wait_ready(10)
        client = await RpcClient.connect(ws_url(app))
        clients.append(client)
        await client.authenticate(mint_token("admin"))
        return app, client

    yield start
    for client in clients:
        await client.close()


async def rpc_error(client: RpcClient, method: str, params: dict) -> RpcCallError:
    with pytest.raises(RpcCallError) as caught:
        await client.call(method, params)
    return caught.value


async def test_list_info_delete_and_download_of_a_recording(service):
    app, client = await service()
    started = await client.call("start_recording", {"device": "camera0"})
    name = started["filename"]
    await asyncio.sleep(1.2)
    # While it is written: listed with a null duration, not deletable (-1002).
    page = await client.call("list_recordings")
    (entry,) = page["files"]
    assert list(entry) == FILE_KEYS
    assert (entry["filename"], entry["duration"], entry["device"]) == (
        name,
        None,
        started["device"],
    )
    assert entry["file_size"] > 0
    error = await rpc_error(client, "delete_recording", {"filename": name})
    assert (error.code, error.message, error.data["filename"]) == (
        -1002,
        "Recording in progress",
        name,
    )
    stopped = await client.call("stop_recording", {"device": "camera0"})
    path = os.path.join(app.config.recording.path, name)
    measured = probe(path)["duration"]
    info = await client.call("get_recording_info", {"filename": name})
    assert list(info) == [*FILE_KEYS, "created_time"]
    assert info["file_size"] == os.path.getsize(path) == stopped["file_size"]
    assert info["download_url"] == f"/files/recordings/{name}"
    assert abs(info["duration"] - measured) <= 0.1 * measured, (info, measured)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", info["modified_time"])
    page = await client.call("list_recordings", {"limit": 10, "offset": 0})
    listed = {k: v for k, v in info.items() if k != "created_time"}
    assert page == {"files": [listed], "total": 1, "limit": 10, "offset": 0}

    # Download: whole file, then a range (what a <video> element asks for when it seeks).
    token = mint_token("viewer")
    status, headers, body = await fetch(
        app.port, info["download_url"], Authorization=f"Bearer {token}"
    )
    assert status == 200
    assert headers["content-type"] == "video/mp4"
    assert headers["accept-ranges"] == "bytes"
    assert headers["content-disposition"] == f'attachment; filename="{name}"'
    with open(path, "rb") as fh:
        assert body == fh.read()
    status, headers, part = await fetch(
        app.port, f"{info['download_url']}?token={token}", Range="bytes=100-1099"
    )
    assert status == 206 and part == body[100:1100]
    assert headers["content-range"] == f"bytes 100-1099/{len(body)}"
    status, _, _ = await fetch(app.port, info["download_url"])
    assert status == 401
    status, _, _ = await fetch(
        app.port, "/files/recordings/missing.mp4", Authorization=f"Bearer {token}"
    )
    assert status == 404
    status, _, _ = await fetch(
        app.port, "/files/recordings/.hidden.mp4", Authorization=f"Bearer {token}"
    )
    assert status == 400

    deleted = await client.call("delete_recording", {"filename": name})
    assert deleted == {
        "filename": name,
        "deleted": True,
        "message": "Recording file deleted successfully",
    }
    assert not os.path.exists(path)
    error = await rpc_error(client, "get_recording_info", {"filename": name})
    assert (error.code, error.message, error.data["filename"]) == (
        -1005,
        "Recording file not found",
        name,
    )
    error = await rpc_error(client, "delete_recording", {"filename": name})
    assert error.code == -1005
    assert (await client.call("list_recordings"))["total"] == 0


async def test_mkv_download_type_and_foreign_files(service, tmp_path):
    app, client = await service()
    started = await client.call("start_recording", {"device": "camera0", "format": "mkv"})
    await asyncio.sleep(1.0)
    await client.call("stop_recording", {"device": "camera0"})
    status, headers, _ = await fetch(
        app.port,
        f"/files/recordings/{started['filename']}",
        Authorization=f"Bearer {mint_token('viewer')}",
    )
    assert (status, headers["content-type"]) == (200, "video/x-matroska")
    # A file copied in from elsewhere: its duration is read from the container; a file that
    # is not a container has none; a name the service did not give has no device.
    directory = Path(app.config.recording.path)
    shutil.copy(directory / started["filename"], directory / "garden.mkv")
    (directory / "notes.mp4").write_bytes(b"not a video")
    await wait_until(lambda: app.recording_files.count() == 3, 5, "the copies indexed")
    garden = await client.call("get_recording_info", {"filename": "garden.mkv"})
    own = await client.call("get_recording_info", {"filename": started["filename"]})
    assert garden["duration"] == pytest.approx(own["duration"], abs=0.05)
    assert "device" not in garden
    junk = await client.call("get_recording_info", {"filename": "notes.mp4"})
    assert junk["duration"] is None


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("list_recordings", {"limit": 0}),
        ("list_recordings", {"limit": 1001}),
        ("list_recordings", {"limit": "5"}),
        ("list_recordings", {"offset": -1}),
        ("list_recordings", {"offset": 1.0}),
        ("get_recording_info", {}),
        ("get_recording_info", {"filename": 7}),
        ("get_recording_info", {"filename": "../etc/passwd"}),
        ("get_recording_info", {"filename": ".."}),
        ("delete_recording", {"filename": "a\x00b.mp4"}),
        ("delete_recording", {"filename": "x" * 256}),
        ("delete_recording", {"filename": ""}),
    ],
)
async def test_file_params_are_checked(service, method, params):
    _, client = await service()
    error = await rpc_error(client, method, params)
    assert error.code == -32602 and error.data["reason"], error


async def test_roles_of_the_file_and_storage_methods(service):
    app, _ = await service()
    viewer = await RpcClient.connect(ws_url(app))
    await viewer.authenticate(mint_token("viewer"))
    assert (await viewer.call("list_recordings"))["total"] == 0
    for method, params in (
        ("delete_recording", {"filename": "a.mp4"}),
        ("get_storage_info", {}),
    ):
        error = await rpc_error(viewer, method, params)
        assert error.code == -32003, method
    await viewer.close()


async def test_10000_recordings_are_listed_in_well_under_50_ms(service, tmp_path):
    directory = tmp_path / "recordings"
    directory.mkdir()
    base = time.time() - 86_400
    for number in range(10_000):
        path = directory / f"camera{number % 4}_2026-01-01_00-00-00_{number + 2}.mp4"
        path.write_bytes(b"")
        os.utime(path, (base + number, base + number))
    app, client = await service({"recording": {"path": str(directory)}})
    first = await client.call("list_recordings", {"limit": 100})
    assert first["total"] == 10_000
    assert first["files"][0]["filename"] == "camera3_2026-01-01_00-00-00_10001.mp4"
    assert first["files"][0]["device"].endswith("/video3")
    # Durations of files the service did not write are read once, off the loop; after that
    # a page is a slice of the kept index.
    for offset in range(0, 10_000, 1000):
        await client.call("list_recordings", {"limit": 1000, "offset": offset})
    times = []
    for offset in range(0, 10_000, 500):
        started = time.perf_counter()
        page = await client.call("list_recordings", {"limit": 100, "offset": offset})
        times.append(time.perf_counter() - started)
        assert len(page["files"]) == 100
    # The round trip includes the client; the listing itself is a slice of a kept index.
    assert statistics.median(times) < 0.05, times


async def test_storage_info_counts_both_directories(service, tmp_path):
    snaps = tmp_path / "snaps"
    app, client = await service({"snapshots": {"path": str(snaps)}})
    await client.call("take_snapshot", {"device": "camera0"})
    started = await client.call("start_recording", {"device": "camera0"})
    await asyncio.sleep(0.8)
    await client.call("stop_recording", {"device": "camera0"})
    info = await client.call("get_storage_info")
    assert list(info) == STORAGE_KEYS
    st = os.statvfs(app.config.recording.path)
    assert info["total_space"] == st.f_blocks * st.f_frsize
    assert (
        0
        < info["available_space"]
        <= info["total_space"] - info["used_space"] + (st.f_bfree - st.f_bavail) * st.f_frsize
    )
    assert info["used_percent"] == pytest.approx(
        100 * info["used_space"] / info["total_space"], abs=0.5
    )
    assert (info["warn_threshold"], info["block_threshold"]) == (80, 90)
    recording = os.path.join(app.config.recording.path, started["filename"])
    assert (info["recordings_count"], info["recordings_size"]) == (1, os.path.getsize(recording))
    assert info["snapshots_count"] == 1
    assert info["snapshots_size"] == sum(f.stat().st_size for f in snaps.iterdir())
    assert info["low_space_warning"] is (info["used_percent"] >= 80)


async def test_thresholds_warn_and_block(service):
    app, client = await service({"storage": {"warn_percent": 1, "block_percent": 1}})
    info = await client.call("get_storage_info")
    if info["used_percent"] < 1:
        pytest.skip("the test file system is almost empty; thresholds cannot trigger")
    assert info["low_space_warning"] is True and info["critical_space_warning"] is True
    error = await rpc_error(client, "start_recording", {"device": "camera0"})
    assert (error.code, error.message) == (-1010, "Storage space is critical")
    # Checked after the camera and the running recording (PROTOCOL 5.10 order).
    assert (await rpc_error(client, "start_recording", {"device": "camera9"})).code == -1000


async def test_storage_warning_in_the_start_result(service):
    app, client = await service({"storage": {"warn_percent": 1, "block_percent": 100}})
    if (await client.call("get_storage_info"))["used_percent"] < 1:
        pytest.skip("the test file system is almost empty; the warning cannot trigger")
    started = await client.call("start_recording", {"device": "camera0"})
    assert started["storage_warning"] is True
    await client.call("stop_recording", {"device": "camera0"})


@pytest.fixture
def small_fs(tmp_path):
    """A 1 MB tmpfs: a recording (about 0.6 MB/s here) fills it within two seconds."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def test_a_full_disk_fails_the_recording_and_keeps_a_playable_file(service, small_fs):
    app, client = await service(
        {
            "recording": {"path": str(small_fs)},
            "snapshots": {"path": str(small_fs / "snapshots")},
        }
    )
    notes = Notes(client)
    started = await client.call("start_recording", {"device": "camera0"})
    note = await notes.wait_for("FAILED", timeout=15)
    assert note["reason"] == "the disk is full"
    assert note["filename"] == started["filename"]
    path = str(small_fs / started["filename"])
    info = probe(path)
    assert info["codec"] == "mjpeg" and info["frames"] >= 1, info
    assert decodes(path)
    assert app.recorder.sessions == {}
    # The service keeps serving; the full disk now answers -1010 before any capture.
    storage = await client.call("get_storage_info")
    assert storage["critical_space_warning"] is True, storage
    error = await rpc_error(client, "start_recording", {"device": "camera0"})
    assert error.code == -1010
    notes.close()


def serve(tmp_path: Path, dev_dir: str) -> tuple[subprocess.Popen, int]:
    """`camera-service serve` as its own process on the fake cameras; (process, port)."""
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nshutdown_timeout = 2\n'
        f'[security]\njwt_secret = "{TEST_JWT_SECRET}"\nstate_dir = "{tmp_path / "var"}"\n'
        f'[camera]\ndevice_dir = "{dev_dir}"\n'
        '[logging]\nlevel = "info"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMERA_SERVICE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "camera_service", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, port


async def test_sigterm_finalizes_the_open_segment_and_says_stopped(fake_cameras, tmp_path):
    fake_cameras.add("video0", fakecams.streaming_camera())
    proc, port = serve(tmp_path, fake_cameras.dev_dir)
    try:
        client = await connect_when_up(port, proc)
        notes = Notes(client)
        started = await client.call("start_recording", {"device": "camera0", "format": "mkv"})
        await asyncio.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        note = await notes.wait_for("STOPPED")
        assert (note["session_id"], note["filename"]) == (
            started["session_id"],
            started["filename"],
        )
        assert await asyncio.to_thread(proc.wait, 10) == 0
        notes.close()
        await client.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    path = str(tmp_path / "var" / "recordings" / started["filename"])
    info = probe(path)
    # Matroska has a duration only when its segment was finalized.
    assert info["duration"] == pytest.approx(note["duration"], abs=0.1), (info, note)
    assert decodes(path)


async def test_kill_9_mid_segment_leaves_a_playable_file(fake_cameras, tmp_path):
    fake_cameras.add("video0", fakecams.streaming_camera())
    proc, port = serve(tmp_path, fake_cameras.dev_dir)
    try:
        client = await connect_when_up(port, proc)
        started = await client.call("start_recording", {"device": "camera0"})
        await asyncio.sleep(2.6)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        await client.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    path = str(tmp_path / "var" / "recordings" / started["filename"])
    info = probe(path)
    # Fragments of at least 1 s: at most about a second of the tail is lost.
    assert info["codec"] == "mjpeg" and info["frames"] >= 30, info
    assert info["duration"] is not None and info["duration"] >= 1.0, info
    assert decodes(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def connect_when_up(port: int, proc: subprocess.Popen) -> RpcClient:
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, "the service exited"
        try:
            client = await RpcClient.connect(f"ws://127.0.0.1:{port}/ws")
            break
        except OSError:
            assert time.monotonic() < deadline, "the service never started listening"
            await asyncio.sleep(0.1)
    await client.authenticate(mint_token("operator"))
    # Listening comes before the first device scan is done: wait for the camera itself.
    while not any(
        c["status"] == "CONNECTED" for c in (await client.call("get_camera_list"))["cameras"]
    ):
        assert time.monotonic() < deadline, "the service never found the camera"
        await asyncio.sleep(0.05)
    return client
