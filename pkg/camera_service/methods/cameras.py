"""Camera methods (PROTOCOL 5.2-5.4)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import orjson

from camera_service.cameras.model import (
    CONNECTED,
    Camera,
    camera_capabilities,
    camera_list_entry,
    camera_status,
)
from camera_service.cameras.streams import StreamUrls
from camera_service.core.component import Passive
from camera_service.rpc._jsonrpc import PreEncoded
from camera_service.rpc.errors import CAMERA_NOT_FOUND, RpcError, invalid_params
from camera_service.rpc.registry import MethodRegistry

if TYPE_CHECKING:
    from camera_service.cameras.monitor import CameraMonitor
    from camera_service.config import Config


class RecordingState(Protocol):
    """What the CAMERA object needs from the recorder (media/recorder.py)."""

    version: int  # changes whenever some camera's recording fields change

    @property
    def active(self) -> bool: ...

    def fields(self, camera: Camera) -> dict[str, Any]: ...


class CameraApi(Passive):
    """Reads the monitor's snapshots; the list's JSON is built once per registry version
    (and, while a camera records, per call: `elapsed_time` moves)."""

    def __init__(self, monitor: CameraMonitor, streams: StreamUrls):
        self.monitor = monitor
        self.streams = streams
        # The recorder (set by app.py): its recording fields join every CAMERA object.
        self.recording: RecordingState | None = None
        self._list_version: Any = None
        self._list_json: PreEncoded | None = None

    def apply(self, config: Config) -> None:
        """`[media]` may have changed: later answers build stream URLs from the new values."""
        streams = StreamUrls.from_config(config)
        if streams != self.streams:
            self.streams = streams
            self._list_version = None

    def entry(self, camera: Camera) -> dict[str, Any]:
        """The CAMERA object of PROTOCOL 5.2 (also the MQTT bridge's `state` payload)."""
        entry = camera_list_entry(camera, self.streams)
        if self.recording is not None:
            entry.update(self.recording.fields(camera))
        return entry

    def get_camera_list(self, ctx: Any, params: dict[str, Any]) -> PreEncoded:
        recording = self.recording
        version = (self.monitor.version, recording.version if recording is not None else 0)
        if (
            version != self._list_version
            or self._list_json is None
            or (recording is not None and recording.active)
        ):
            cameras = self.monitor.snapshot()
            payload = {
                "cameras": [self.entry(c) for c in cameras],
                "total": len(cameras),
                "connected": sum(1 for c in cameras if c.status == CONNECTED),
            }
            self._list_json = PreEncoded(orjson.dumps(payload))
            self._list_version = version
        return self._list_json

    def get_camera_status(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        camera = find_camera(self.monitor, params)
        # The CAMERA object (recording fields included) first, then what only status adds.
        status = self.entry(camera)
        status.update(camera_status(camera, self.streams))
        return status

    def get_camera_capabilities(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        return camera_capabilities(find_camera(self.monitor, params))


def device_param(params: dict[str, Any]) -> str:
    """The required `device` param: -32602 when missing or not a string."""
    device = params.get("device")
    if device is None:
        raise invalid_params(
            "device is required: a device path such as /dev/video0 or a stream name such as camera0"
        )
    if not isinstance(device, str):
        raise invalid_params(f"device must be a string, got {type(device).__name__}")
    return device


def find_camera(monitor: CameraMonitor, params: dict[str, Any]) -> Camera:
    """The camera named by `device` (a path or `cameraN`); -1000 when there is none."""
    device = device_param(params)
    camera = monitor.get(device)
    if camera is None:
        raise RpcError(
            CAMERA_NOT_FOUND,
            data={
                "reason": "no camera with this device path or stream name",
                "device": device[:256],
            },
        )
    return camera


def register(registry: MethodRegistry, api: CameraApi) -> None:
    """Add the camera methods of PROTOCOL 5.2-5.4 to `registry`."""
    registry.add("get_camera_list", api.get_camera_list, "viewer", binds_context=False)
    registry.add("get_camera_status", api.get_camera_status, "viewer")
    registry.add("get_camera_capabilities", api.get_camera_capabilities, "viewer")
