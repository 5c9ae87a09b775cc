"""Retention (PROTOCOL 5.15, defect 19): the policy is stored in the state directory and
survives a restart, wins over `retention.*`, and deletes exactly the files it should (oldest
first, never a segment being written), periodically, after a closed segment and on demand."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import mint_token, wait_until, ws_url

from camera_service.client import RpcCallError, RpcClient
from camera_service.testing import fakecams

DAY = 86_400


def put(directory: Path, name: str, size: int, age_days: float) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(b"x" * size)
    moment = time.time() - age_days * DAY
    os.utime(path, (moment, moment))
    return path


@pytest.fixture
def dirs(tmp_path) -> tuple[Path, Path]:
    return tmp_path / "rec", tmp_path / "snap"


@pytest.fixture
async def service(start_app, dirs):
    """`await service(overrides)` -> (app, admin client) on the test directories."""
    recordings, snapshots = dirs
    clients = []

    async def start(extra=None):
        overrides = {
            "recording": {"path": str(recordings)},
            "snapshots": {"path": str(snapshots)},
            "logging": {"level": "info"},
        }
        for section, values in (extra or {}).items():
            overrides.setdefault(section, {}).update(values)
        app = await start_app(overrides)
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


async def test_policy_from_config_then_stored_and_kept_over_a_restart(service, dirs):
    app, client = await service({"retention": {"policy": "size", "max_size_gb": 2.5}})
    assert await client.call("get_retention_policy") == {
        "policy_type": "size",
        "enabled": True,
        "max_size_gb": 2.5,
    }
    result = await client.call(
        "set_retention_policy", {"policy_type": "age", "enabled": True, "max_age_days": 7}
    )
    assert result == {
        "policy_type": "age",
        "enabled": True,
        "max_age_days": 7,
        "message": "Retention policy updated successfully",
    }
    stored = Path(app.config.security.state_dir) / "retention_policy.json"
    assert json.loads(stored.read_text())["policy_type"] == "age"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in stored.parent.iterdir() if p.name.startswith(".")] == []
    await app.stop()
    # A new process on the same state directory: the stored policy wins over the config.
    app, client = await service({"retention": {"policy": "size", "max_size_gb": 2.5}})
    assert await client.call("get_retention_policy") == {
        "policy_type": "age",
        "enabled": True,
        "max_age_days": 7,
    }
    viewer = await RpcClient.connect(ws_url(app))
    await viewer.authenticate(mint_token("viewer"))
    assert (await viewer.call("get_retention_policy"))["policy_type"] == "age"
    for method, params in (
        ("set_retention_policy", {"policy_type": "manual"}),
        ("cleanup_old_files", {}),
    ):
        assert (await rpc_error(viewer, method, params)).code == -32003
    await viewer.close()


async def test_age_policy_deletes_exactly_the_old_files(service, dirs):
    recordings, snapshots = dirs
    old = [
        put(recordings, "camera0_2026-01-01_00-00-00.mp4", 1000, 10),
        put(snapshots, "camera0_snapshot_old.jpg", 300, 9),
    ]
    young = [
        put(recordings, "camera0_2026-11-30_00-00-00.mp4", 5000, 2),
        put(snapshots, "camera0_snapshot_new.jpg", 200, 0.1),
    ]
    app, client = await service()
    # Manual (the default): nothing is deleted.
    result = await client.call("cleanup_old_files")
    assert (result["cleanup_executed"], result["files_deleted"], result["space_freed"]) == (
        True,
        0,
        0,
    )
    await client.call(
        "set_retention_policy", {"policy_type": "age", "enabled": False, "max_age_days": 5}
    )
    assert (await client.call("cleanup_old_files"))["files_deleted"] == 0  # disabled
    await client.call("set_retention_policy", {"policy_type": "age", "max_age_days": 5})
    result = await client.call("cleanup_old_files")
    assert (result["files_deleted"], result["space_freed"]) == (2, 1300)
    assert result["message"]
    assert [p.exists() for p in old] == [False, False]
    assert [p.exists() for p in young] == [True, True]
    listed = await client.call("list_recordings")
    assert [f["filename"] for f in listed["files"]] == ["camera0_2026-11-30_00-00-00.mp4"]
    assert (await client.call("cleanup_old_files"))["files_deleted"] == 0


async def test_size_policy_deletes_oldest_first_across_both_directories(service, dirs):
    recordings, snapshots = dirs
    files = [
        put(recordings, "a.mp4", 400, 5),
        put(snapshots, "b.jpg", 300, 4),
        put(recordings, "c.mp4", 200, 3),
        put(snapshots, "d.jpg", 100, 2),
        put(recordings, "e.mp4", 100, 1),
    ]
    app, client = await service()
    # 1,000 bytes held: a limit of 450 bytes deletes a (400) and b (300), leaving 400.
    await client.call("set_retention_policy", {"policy_type": "size", "max_size_gb": 450e-9})
    result = await client.call("cleanup_old_files")
    assert (result["files_deleted"], result["space_freed"]) == (2, 700)
    assert [p.exists() for p in files] == [False, False, True, True, True]
    storage = await client.call("get_storage_info")
    assert storage["recordings_size"] + storage["snapshots_size"] == 400


async def test_enforced_periodically(service, dirs):
    recordings, _ = dirs
    old = put(recordings, "old.mp4", 10, 40)
    await service({"retention": {"policy": "age", "max_age_days": 30, "interval": 0.2}})
    await wait_until(lambda: not old.exists(), 5, "the periodic run to delete the old file")


@pytest.mark.fuse
async def test_after_a_closed_segment_and_never_the_file_being_written(service, dirs, fake_cameras):
    recordings, _ = dirs
    fake_cameras.add("video0", fakecams.streaming_camera())
    app, client = await service({"camera": {"device_dir": fake_cameras.dev_dir}})
    await app.monitor.wait_ready(10)
    app.recorder.segment_seconds_override = 0.5
    await client.call("set_retention_policy", {"policy_type": "size", "max_size_gb": 1e-9})
    old = put(recordings, "old.mp4", 10, 40)
    started = await client.call("start_recording", {"device": "camera0"})
    # The first closed segment triggers a run: the old file and the closed segment go, the
    # segment being written stays, however far over the limit it is.
    await wait_until(lambda: not old.exists(), 5, "a run after the first closed segment")
    await wait_until(
        lambda: not (recordings / started["filename"]).exists(), 5, "the closed segment deleted"
    )
    result = await client.call("cleanup_old_files")
    session = app.recorder.session_of(started["device"])
    assert session.current_file != started["filename"]
    # A segment's file appears with its first muxed frame (the worker writes every 0.2 s),
    # so the current one may not exist yet; it must appear, not be deleted.
    await wait_until(
        lambda: (recordings / session.current_file).exists(), 5, "the current segment's file"
    )
    assert result["cleanup_executed"] is True
    stopped = await client.call("stop_recording", {"device": "camera0"})
    assert stopped["files"][0] == started["filename"]
    await wait_until(
        lambda: list(recordings.iterdir()) == [], 5, "the last segment deleted after it closed"
    )


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({}, "policy_type"),
        ({"policy_type": "forever"}, "policy_type"),
        ({"policy_type": 1}, "policy_type"),
        ({"policy_type": "age"}, "max_age_days"),
        ({"policy_type": "age", "max_age_days": 0}, "max_age_days"),
        ({"policy_type": "age", "max_age_days": -3}, "max_age_days"),
        ({"policy_type": "age", "max_age_days": "7"}, "max_age_days"),
        ({"policy_type": "age", "max_age_days": True}, "max_age_days"),
        ({"policy_type": "age", "max_age_days": 1e30}, "max_age_days"),
        ({"policy_type": "size", "max_size_gb": 2e9}, "max_size_gb"),
        ({"policy_type": "size"}, "max_size_gb"),
        ({"policy_type": "size", "max_size_gb": 0.0}, "max_size_gb"),
        ({"policy_type": "manual", "enabled": "yes"}, "enabled"),
        ({"policy_type": "manual", "enabled": 1}, "enabled"),
    ],
)
async def test_bad_policy_params(service, params, word):
    app, client = await service()
    error = await rpc_error(client, "set_retention_policy", params)
    assert error.code == -32602 and word in error.data["reason"], error
    stored = Path(app.config.security.state_dir) / "retention_policy.json"
    assert not stored.exists()


async def test_a_damaged_stored_policy_falls_back_to_the_config(service, tmp_path):
    state = tmp_path / "var"
    state.mkdir(exist_ok=True)
    (state / "retention_policy.json").write_text('{"policy_type": "age", "enab')
    app, client = await service({"retention": {"policy": "age", "max_age_days": 3}})
    assert Path(app.config.security.state_dir) == state
    assert await client.call("get_retention_policy") == {
        "policy_type": "age",
        "enabled": True,
        "max_age_days": 3,
    }
