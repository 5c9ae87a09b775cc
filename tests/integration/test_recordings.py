"""start_recording / stop_recording end to end (PROTOCOL 5.10, 5.11, 6, defects 17 and 18): the
real service records from FUSE fake cameras through its shared capture; the files are checked
with Debian's ffprobe/ffmpeg, an independent reader."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess

import orjson
import pytest
from conftest import RawClient, mint_token, wait_until, ws_url

from camera_service.client import RpcCallError, RpcClient
from camera_service.testing import fakecams

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(shutil.which("ffprobe") is None, reason="Debian ffmpeg/ffprobe needed"),
]

START_KEYS = [
    "device",
    "session_id",
    "filename",
    "status",
    "start_time",
    "duration",
    "format",
    "storage_warning",
]
STOP_KEYS = [
    "device",
    "session_id",
    "filename",
    "files",
    "status",
    "start_time",
    "end_time",
    "duration",
    "file_size",
]
ISO_MS_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
NAME = re.compile(r"camera(\d+)_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}(_\d+)?\.(mp4|mkv)")


def probe(path: str) -> dict:
    """ffprobe's view of the file: codec, decoded frame count, duration."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,nb_read_frames,width,height:format=duration",
            "-of",
            "json",
            path,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    data = json.loads(out.stdout)
    stream = data["streams"][0]
    duration = data.get("format", {}).get("duration")
    return {
        "codec": stream["codec_name"],
        "frames": int(stream["nb_read_frames"]),
        "size": (stream["width"], stream["height"]),
        "duration": float(duration) if duration not in (None, "N/A") else None,
    }


def decodes(path: str) -> bool:
    """ffmpeg decodes every frame of the file (exit status 0)."""
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"],
        capture_output=True,
        timeout=60,
    )
    return result.returncode == 0


class Notes:
    """The recording_status_update notifications a client received, in order."""

    def __init__(self, client: RpcClient) -> None:
        self.items: list[dict] = []
        self._task = asyncio.get_running_loop().create_task(self._collect(client))

    async def _collect(self, client: RpcClient) -> None:
        async for note in client.notifications():
            if note.get("method") == "recording_status_update":
                self.items.append(note["params"])

    def statuses(self) -> list[str]:
        return [n["status"] for n in self.items]

    async def wait_for(self, status: str, timeout: float = 10) -> dict:
        await wait_until(lambda: status in self.statuses(), timeout, f"a {status} notification")
        return next(n for n in self.items if n["status"] == status)

    def close(self) -> None:
        self._task.cancel()


@pytest.fixture
async def recording_app(start_app, fake_cameras):
    """A service on the fake mount with a streaming MJPG camera (video0) and a YUYV-only one
    (video2); returns (app, operator client)."""
    fake_cameras.add("video0", fakecams.streaming_camera())
    fake_cameras.add("video2", fakecams.yuyv_only_camera())
    clients = []

    async def start(extra=None):
        # Info level: every log call of a recording runs (an extra that clashes with a
        # LogRecord attribute raises only when the record is made).
        overrides = {"camera": {"device_dir": fake_cameras.dev_dir}, "logging": {"level": "info"}}
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


async def error_of(client: RpcClient, method: str, params: dict) -> RpcCallError:
    with pytest.raises(RpcCallError) as info:
        await client.call(method, params)
    return info.value


def path_of(app, name: str) -> str:
    return os.path.join(os.path.abspath(app.config.recording.path), name)


async def test_mjpeg_copy_recording_plays_with_the_cameras_frames(recording_app):
    app, client = await recording_app()
    notes = Notes(client)
    started = await client.call("start_recording", {"device": "camera0"})
    assert list(started) == START_KEYS
    device = os.path.join(app.config.camera.device_dir, "video0")
    assert (started["device"], started["status"], started["format"]) == (device, "STARTED", "mp4")
    assert started["duration"] is None and started["storage_warning"] is False
    assert NAME.fullmatch(started["filename"]) and started["filename"].startswith("camera0_")
    assert ISO_MS_Z.fullmatch(started["start_time"])
    # The camera list and status carry the recording fields while it records.
    await asyncio.sleep(1.0)
    status = await client.call("get_camera_status", {"device": "camera0"})
    assert status["recording"] is True
    assert status["recording_session"] == started["session_id"]
    assert status["current_file"] == started["filename"]
    assert status["elapsed_time"] >= 0.9
    listed = await client.call("get_camera_list")
    entry = next(c for c in listed["cameras"] if c["device"] == device)
    assert (entry["recording"], entry["current_file"]) == (True, started["filename"])
    other = next(c for c in listed["cameras"] if c["device"] != device)
    assert (other["recording"], other["recording_session"], other["current_file"]) == (
        False,
        None,
        None,
    )
    assert other["elapsed_time"] == 0
    await asyncio.sleep(1.0)
    stopped = await client.call("stop_recording", {"device": "camera0"})
    assert list(stopped) == STOP_KEYS
    assert stopped["session_id"] == started["session_id"]
    assert stopped["files"] == [started["filename"]] and stopped["filename"] == started["filename"]
    assert stopped["status"] == "STOPPED"
    assert ISO_MS_Z.fullmatch(stopped["end_time"])
    assert 1.7 <= stopped["duration"] <= 2.6, stopped
    path = path_of(app, started["filename"])
    assert stopped["file_size"] == os.path.getsize(path)
    info = probe(path)
    assert (info["codec"], info["size"]) == ("mjpeg", (1280, 720))
    # 30 fps: the frame count and the container's duration match the time recorded.
    assert abs(info["duration"] - stopped["duration"]) <= 0.1 * stopped["duration"], info
    assert abs(info["frames"] - 30 * stopped["duration"]) <= 0.1 * 30 * stopped["duration"], info
    assert decodes(path)
    # STARTED then STOPPED, each once, matching the responses.
    await notes.wait_for("STOPPED")
    await asyncio.sleep(0.2)
    assert notes.statuses() == ["STARTED", "STOPPED"]
    first, last = notes.items
    assert first == {
        "device": device,
        "status": "STARTED",
        "filename": started["filename"],
        "duration": None,
        "session_id": started["session_id"],
    }
    assert (last["filename"], last["session_id"], last["duration"]) == (
        started["filename"],
        started["session_id"],
        stopped["duration"],
    )
    status = await client.call("get_camera_status", {"device": "camera0"})
    assert (status["recording"], status["recording_session"], status["elapsed_time"]) == (
        False,
        None,
        0,
    )
    notes.close()


async def test_yuyv_is_encoded_to_h264_in_mkv(recording_app):
    app, client = await recording_app()
    started = await client.call("start_recording", {"device": "camera2", "format": "mkv"})
    assert started["filename"].endswith(".mkv") and started["format"] == "mkv"
    await asyncio.sleep(2.0)
    stopped = await client.call("stop_recording", {"device": "camera2"})
    info = probe(path_of(app, stopped["filename"]))
    assert (info["codec"], info["size"]) == ("h264", (1280, 720))
    assert abs(info["duration"] - stopped["duration"]) <= 0.1 * stopped["duration"], info
    assert info["frames"] >= 0.8 * 30 * stopped["duration"], info  # an encoder may drop a few
    assert decodes(path_of(app, stopped["filename"]))


async def test_codec_h264_decodes_mjpeg_and_encodes(recording_app):
    app, client = await recording_app({"recording": {"codec": "h264"}})
    started = await client.call("start_recording", {"device": "camera0"})
    await asyncio.sleep(1.5)
    await client.call("stop_recording", {"device": "camera0"})
    info = probe(path_of(app, started["filename"]))
    assert info["codec"] == "h264" and info["frames"] > 20, info
    assert decodes(path_of(app, started["filename"]))


async def test_notification_follows_the_response_on_the_wire(recording_app):
    """Frame order as the client reads it: each response before the notification it caused
    (PROTOCOL 1 Ordering, defect 18)."""
    app, _ = await recording_app()
    raw = await RawClient.open(ws_url(app))
    reply = await raw.request(
        {
            "jsonrpc": "2.0",
            "method": "authenticate",
            "id": 0,
            "params": {"auth_token": mint_token("operator")},
        }
    )
    assert "result" in reply
    for step, method in enumerate(("start_recording", "stop_recording"), start=1):
        raw.send(
            orjson.dumps(
                {"jsonrpc": "2.0", "method": method, "id": step, "params": {"device": "camera0"}}
            )
        )
        first = await raw.recv_json()
        second = await raw.recv_json()
        assert first.get("id") == step and "result" in first, (first, second)
        assert second["method"] == "recording_status_update", second
        assert second["params"]["session_id"] == first["result"]["session_id"]
        assert second["params"]["status"] == ("STARTED" if step == 1 else "STOPPED")
        await asyncio.sleep(0.5)
    await raw.close()


async def test_timed_recording_stops_itself_exactly_once(recording_app):
    app, client = await recording_app()
    notes = Notes(client)
    started = await client.call("start_recording", {"device": "camera0", "duration_seconds": 1})
    assert started["duration"] == 1
    note = await notes.wait_for("STOPPED", timeout=10)
    assert note["filename"] == started["filename"]
    assert 0.7 <= note["duration"] <= 1.5
    # Not recording any more: stop answers -1003, and a new start works (not -1006 forever).
    error = await error_of(client, "stop_recording", {"device": "camera0"})
    assert error.code == -1003
    again = await client.call("start_recording", {"device": "camera0", "duration": 60})
    await asyncio.sleep(0.5)
    stopped = await client.call("stop_recording", {"device": "camera0"})  # cancels the timer
    assert stopped["session_id"] == again["session_id"]
    await asyncio.sleep(0.3)
    assert notes.statuses() == ["STARTED", "STOPPED", "STARTED", "STOPPED"]
    probe_info = probe(path_of(app, started["filename"]))
    assert abs(probe_info["duration"] - 1.0) <= 0.15, probe_info
    notes.close()


async def test_manual_stop_cancels_the_timer(recording_app):
    app, client = await recording_app()
    notes = Notes(client)
    await client.call("start_recording", {"device": "camera0", "duration": 1})
    await asyncio.sleep(0.4)
    await client.call("stop_recording", {"device": "camera0"})
    await asyncio.sleep(1.2)  # past the timer's moment: no second STOPPED
    assert notes.statuses() == ["STARTED", "STOPPED"]
    notes.close()


async def test_segments_are_named_by_their_start_and_each_plays(recording_app):
    app, client = await recording_app()
    app.recorder.segment_seconds_override = 1.0
    notes = Notes(client)
    started = await client.call("start_recording", {"device": "camera0"})
    await asyncio.sleep(3.3)
    stopped = await client.call("stop_recording", {"device": "camera0"})
    files = stopped["files"]
    assert len(files) >= 3, stopped
    assert files[0] == started["filename"]
    assert len(set(files)) == len(files) and all(NAME.fullmatch(f) for f in files)
    segments = [n for n in notes.items if n["status"] == "SEGMENT"]
    await asyncio.sleep(0.2)
    assert [n["filename"] for n in segments] == files[1:]
    assert notes.items[-1]["filename"] == files[-1]
    total = 0.0
    for name in files[:-1]:
        info = probe(path_of(app, name))
        assert abs(info["frames"] - 30) <= 1, (name, info)  # 1 s of 30 fps each
        total += info["duration"]
    total += probe(path_of(app, files[-1]))["duration"]
    assert abs(total - stopped["duration"]) <= 0.1 * stopped["duration"]
    assert stopped["file_size"] == sum(os.path.getsize(path_of(app, f)) for f in files)
    notes.close()


async def test_unplug_fails_the_recording_and_leaves_a_playable_file(recording_app, fake_cameras):
    app, client = await recording_app()
    notes = Notes(client)
    started = await client.call("start_recording", {"device": "camera0"})
    await asyncio.sleep(1.5)
    fake_cameras.remove("video0")
    note = await notes.wait_for("FAILED")
    assert note["filename"] == started["filename"] and note["reason"]
    assert note["duration"] > 1.0
    info = probe(path_of(app, started["filename"]))
    assert info["frames"] >= 30 and decodes(path_of(app, started["filename"]))
    assert app.recorder.sessions == {}


async def test_stalled_camera_fails_after_frame_timeout(recording_app, fake_cameras):
    fake_cameras.add("video4", fakecams.stalling_camera(frames=10))
    app, client = await recording_app({"capture": {"frame_timeout": 0.6}})
    await wait_until(lambda: app.monitor.get("camera4") is not None, 5, "camera4")
    notes = Notes(client)
    started = await client.call("start_recording", {"device": "camera4"})
    note = await notes.wait_for("FAILED", timeout=5)
    assert "no frame" in note["reason"]
    assert probe(path_of(app, started["filename"]))["frames"] == 10
    notes.close()


async def test_errors_in_the_order_of_the_protocol(recording_app):
    app, client = await recording_app()
    bad_params = [
        {},
        {"device": 5},
        {"device": "camera0", "duration": 0},
        {"device": "camera0", "duration": 1.5},
        {"device": "camera0", "duration": True},
        {"device": "camera0", "duration": 2**31},  # beyond any timer: refused, not a crash
        {"device": "camera0", "duration_seconds": 86_401},
        {"device": "camera0", "duration_minutes": 0},
        {"device": "camera0", "duration_minutes": 1_441},
        {"device": "camera0", "duration_hours": 25},
        {"device": "camera0", "duration_hours": "1"},
        {"device": "camera0", "format": "avi"},
        {"device": "camera0", "format": None},
        {"device": "camera9", "format": "avi"},  # params before the camera
    ]
    for params in bad_params:
        error = await error_of(client, "start_recording", params)
        assert error.code == -32602, (params, error)
        assert error.data["reason"], params
    error = await error_of(client, "start_recording", {"device": "camera9"})
    assert (error.code, error.data["device"]) == (-1000, "camera9")
    error = await error_of(client, "stop_recording", {"device": "camera9"})
    assert error.code == -1000
    error = await error_of(client, "stop_recording", {})
    assert error.code == -32602
    error = await error_of(client, "stop_recording", {"device": "camera0"})
    assert error.code == -1003
    # The first present duration wins: duration_minutes is not looked at.
    started = await client.call(
        "start_recording", {"device": "camera0", "duration_seconds": 30, "duration_minutes": 0}
    )
    assert started["duration"] == 30
    error = await error_of(client, "start_recording", {"device": "camera0"})
    assert (error.code, error.message) == (-1006, "Camera is currently recording")
    assert error.data["session_id"] == started["session_id"]
    await client.call("stop_recording", {"device": "camera0"})
    hours = await client.call("start_recording", {"device": "camera0", "duration_hours": 2})
    assert hours["duration"] == 7200
    await client.call("stop_recording", {"device": hours["device"]})


async def test_viewer_may_not_record(recording_app):
    app, _ = await recording_app()
    viewer = await RpcClient.connect(ws_url(app))
    await viewer.authenticate(mint_token("viewer"))
    error = await error_of(viewer, "start_recording", {"device": "camera0"})
    assert error.code == -32003
    await viewer.close()


async def test_camera_that_cannot_stream_answers_1001(recording_app, fake_cameras):
    fake_cameras.add("video6", fakecams.streamon_fails_camera())
    app, client = await recording_app()
    await wait_until(lambda: app.monitor.get("camera6") is not None, 5, "camera6")
    error = await error_of(client, "start_recording", {"device": "camera6"})
    assert error.code == -1001 and error.data["reason"]
    assert app.recorder.sessions == {}
    assert [n for n in os.listdir(app.config.recording.path) if "camera6" in n] == []


async def test_shutdown_finalizes_open_recordings(recording_app):
    app, client = await recording_app()
    started = await client.call("start_recording", {"device": "camera0", "format": "mkv"})
    await asyncio.sleep(1.2)
    await app.stop()
    path = path_of(app, started["filename"])
    info = probe(path)
    # Finalized: Matroska has its duration only when the trailer was written.
    assert info["duration"] is not None and info["duration"] >= 1.0, info
    assert decodes(path)
