"""Recording, file, storage and retention methods (PROTOCOL 5.10-5.15).

Plain `(ctx, params)` handlers registered in the method registry, so every intake (WebSocket,
the MQTT bridge's commands) runs the same checks in the same order. Params are checked first
(-32602), then the camera (-1000), then what the recorder checks.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from camera_service.media.files import FileEntry, FileIndex
from camera_service.media.recorder import FORMATS, Recorder, device_number_of
from camera_service.media.recording_files import RecordingDurations
from camera_service.media.retention import POLICY_TYPES, Retention, RetentionPolicy
from camera_service.media.storage import disk_usage
from camera_service.methods.cameras import device_param, find_camera
from camera_service.methods.files import FileApi, filename_param, page_params
from camera_service.rpc.errors import (
    RECORDING_IN_PROGRESS,
    RpcError,
    file_not_found,
    invalid_params,
)
from camera_service.rpc.registry import MethodRegistry

if TYPE_CHECKING:
    from camera_service.cameras.monitor import CameraMonitor
    from camera_service.config import Config

# (param, lowest, highest, seconds per unit): the first one present wins (5.10). `duration`
# has no upper bound in the protocol; 2^31-1 s (68 years) keeps it a number every timer and
# JSON encoder takes.
MAX_DURATION = 2**31 - 1
# Retention limits: "> 0" in the protocol; 1e9 days or GB is beyond any disk, and keeps the
# stored policy a plain JSON number.
MAX_POLICY_NUMBER = 1e9
DURATION_PARAMS = (
    ("duration", 1, MAX_DURATION, 1),
    ("duration_seconds", 1, 86_400, 1),
    ("duration_minutes", 1, 1_440, 60),
    ("duration_hours", 1, 24, 3_600),
)


def duration_param(params: dict[str, Any]) -> int | None:
    """Requested seconds, from the first duration param present; None = until stopped."""
    for name, low, high, unit in DURATION_PARAMS:
        value = params.get(name)
        if value is None:
            continue
        if type(value) is not int or not low <= value <= high:
            raise invalid_params(f"{name} must be an integer {low}-{high}")
        return value * unit
    return None


def format_param(params: dict[str, Any]) -> str:
    fmt = params.get("format", "mp4")
    if fmt not in FORMATS:
        raise invalid_params('format must be "mp4" or "mkv"')
    return str(fmt)


def positive_number(params: dict[str, Any], name: str, required: bool) -> float | None:
    value = params.get(name)
    if value is None:
        if required:
            raise invalid_params(f"{name} is required for this policy_type: a number > 0")
        return None
    if type(value) not in (int, float) or not 0 < value <= MAX_POLICY_NUMBER:
        # Also refuses NaN (every comparison is false) and ints too large for a float.
        raise invalid_params(f"{name} must be a number > 0 (at most {MAX_POLICY_NUMBER:g})")
    return value  # type: ignore[no-any-return]


class RecordingFileApi(FileApi):
    """`list_recordings`, `get_recording_info`, `delete_recording`: the snapshot handlers
    over the recordings index, with `duration` (null while written) and `device`. Listing
    and info are async only to read unknown durations off the loop."""

    def __init__(
        self, index: FileIndex, durations: RecordingDurations, recorder: Recorder, config: Config
    ) -> None:
        super().__init__(index, "duration")
        self.durations = durations
        self.recorder = recorder
        self.config = config

    def details(self, entry: FileEntry) -> dict[str, Any]:
        active = self.recorder.active_files()
        obj: dict[str, Any] = {
            "duration": None if entry.name in active else self.durations.get(entry)
        }
        number = device_number_of(entry.name)
        if number is not None:
            obj["device"] = os.path.join(self.config.camera.device_dir, f"video{number}")
        return obj

    def _refresh_active(self) -> None:
        # The index hears of a file being written only when it is created; its size and
        # time move on, so look at it again when asked.
        for name in self.recorder.active_files():
            self.index.note_written(name)

    async def list_recordings(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        limit, offset = page_params(params)
        self._refresh_active()
        entries, _ = self.index.list(limit, offset)
        active = self.recorder.active_files()
        await self.durations.fill(entry for entry in entries if entry.name not in active)
        return self.page(limit, offset)  # the index as it is now, after the wait

    async def get_recording_info(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        name = filename_param(params)
        self._refresh_active()
        entry = self.index.get(name)
        if entry is None:
            raise file_not_found(self.index.kind, name)
        if name not in self.recorder.active_files():
            await self.durations.fill([entry])
        entry = self.index.get(name)
        if entry is None:  # deleted while its duration was read
            raise file_not_found(self.index.kind, name)
        return self.info_object(entry)

    def delete(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        name = filename_param(params)
        if name in self.recorder.active_files():
            raise RpcError(
                RECORDING_IN_PROGRESS,
                data={"reason": "this segment is still being written", "filename": name},
            )
        return super().delete(ctx, params)


class RecordingApi:
    """Handlers over the recorder, the file indexes and retention."""

    def __init__(
        self,
        config: Config,
        monitor: CameraMonitor,
        recorder: Recorder,
        recordings: FileIndex,
        durations: RecordingDurations,
        snapshots: FileIndex,
        retention: Retention,
    ) -> None:
        self.config = config
        self.monitor = monitor
        self.recorder = recorder
        self.recordings = recordings
        self.snapshots = snapshots
        self.retention = retention
        self.files = RecordingFileApi(recordings, durations, recorder, config)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def apply(self, config: Config) -> None:
        self.config = config
        self.files.config = config

    async def start_recording(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        device_param(params)
        duration = duration_param(params)
        fmt = format_param(params)
        camera = find_camera(self.monitor, params)
        return await self.recorder.start_recording(camera, fmt, duration)

    async def stop_recording(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        camera = find_camera(self.monitor, params)
        return await self.recorder.stop_recording(camera)

    def get_storage_info(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        """PROTOCOL 5.14: the file systems of both directories (each counted once)."""
        total = used = available = 0
        seen: set[int] = set()
        for directory in (self.recordings.directory, self.snapshots.directory):
            try:
                device = os.stat(directory).st_dev
            except OSError:
                continue  # not created yet: nothing stored there
            if device in seen:
                continue
            seen.add(device)
            usage = disk_usage(directory)
            total += usage.total
            used += usage.used
            available += usage.available
        storage = self.config.storage
        percent = 100.0 * used / total if total else 0.0
        return {
            "total_space": total,
            "used_space": used,
            "available_space": available,
            "used_percent": round(percent, 2),
            "warn_threshold": storage.warn_percent,
            "block_threshold": storage.block_percent,
            "recordings_size": self.recordings.total_size(),
            "snapshots_size": self.snapshots.total_size(),
            "recordings_count": self.recordings.count(),
            "snapshots_count": self.snapshots.count(),
            "low_space_warning": percent >= storage.warn_percent,
            "critical_space_warning": percent >= storage.block_percent,
        }

    async def set_retention_policy(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        policy_type = params.get("policy_type")
        if policy_type not in POLICY_TYPES:
            raise invalid_params('policy_type is required: "age", "size" or "manual"')
        enabled = params.get("enabled", True)
        if type(enabled) is not bool:
            raise invalid_params("enabled must be a JSON boolean")
        max_age_days = positive_number(params, "max_age_days", policy_type == "age")
        max_size_gb = positive_number(params, "max_size_gb", policy_type == "size")
        policy = RetentionPolicy(str(policy_type), enabled, max_age_days, max_size_gb)
        await self.retention.set_policy(policy)
        result = policy.as_result()
        result["message"] = "Retention policy updated successfully"
        return result

    def get_retention_policy(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        return self.retention.policy.as_result()

    def cleanup_old_files(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        policy = self.retention.policy
        files, freed = self.retention.cleanup()
        if not policy.deletes:
            message = f"Retention policy is {policy.policy_type}" + (
                "" if policy.enabled else " (disabled)"
            )
            message += ": nothing deleted"
        else:
            message = f"Cleanup completed: {files} files deleted"
        return {
            "cleanup_executed": True,
            "files_deleted": files,
            "space_freed": freed,
            "message": message,
        }


def register(registry: MethodRegistry, api: RecordingApi) -> None:
    """Add the methods of PROTOCOL 5.10-5.15 to `registry` (roles per 4.1)."""
    registry.add("start_recording", api.start_recording, "operator")
    registry.add("stop_recording", api.stop_recording, "operator")
    registry.add("list_recordings", api.files.list_recordings, "viewer")
    registry.add("get_recording_info", api.files.get_recording_info, "viewer")
    registry.add("delete_recording", api.files.delete, "operator")
    registry.add("get_storage_info", api.get_storage_info, "admin")
    registry.add("set_retention_policy", api.set_retention_policy, "admin")
    registry.add("get_retention_policy", api.get_retention_policy, "viewer")
    registry.add("cleanup_old_files", api.cleanup_old_files, "admin")
