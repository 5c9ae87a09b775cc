"""`take_snapshot` (PROTOCOL 5.9): a frame from the shared capture, written as a file.

The frame is the newest one of a running capture when it is fresh (at most a frame interval
and a half old), else the next one; a cold camera starts its capture for the snapshot and
lets it idle-stop afterwards. MJPG frames are written byte for byte; YUYV frames are encoded
(libjpeg-turbo) in a worker thread so the event loop never waits for the encoder. The file
is complete on disk (temporary file, fsync, rename) before the answer goes out.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from camera_service.core.events import EventBus, SnapshotTaken
from camera_service.health import utc_timestamp
from camera_service.media import encoders
from camera_service.media.capture import CaptureError, CaptureManager, Frame
from camera_service.media.names import check_base_name
from camera_service.media.storage import check_storage
from camera_service.rpc.errors import (
    CAMERA_NOT_AVAILABLE,
    RpcError,
    invalid_params,
)

if TYPE_CHECKING:
    from camera_service.cameras.model import Camera
    from camera_service.config import Config

FORMATS = {"jpg": "jpg", "jpeg": "jpg", "png": "png"}
EXTENSIONS = {"jpg": (".jpg", ".jpeg"), "png": (".png",)}
DOWNLOAD_PREFIX = "/files/snapshots/"
# When a running capture's newest frame is older than this many frame intervals, the
# snapshot waits for the next frame instead (a stalled camera must not serve an old image).
FRESH_INTERVALS = 1.5


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """Validated `take_snapshot` params."""

    format: str  # "jpg" | "png"
    quality: int
    filename: str | None  # a checked base name with its extension, or None for the default


def parse_request(params: dict[str, Any], default_quality: int) -> SnapshotRequest:
    """-32602 for a param of the wrong type or out of range, naming it."""
    fmt = params.get("format", "jpg")
    if not isinstance(fmt, str) or fmt.lower() not in FORMATS:
        raise invalid_params('format must be "jpg" (or "jpeg") or "png"')
    fmt = FORMATS[fmt.lower()]
    quality = params.get("quality", default_quality)
    if type(quality) is not int or not 1 <= quality <= 100:
        raise invalid_params("quality must be an integer 1-100 (higher is better)")
    filename = params.get("filename")
    if filename is not None:
        if not isinstance(filename, str):
            raise invalid_params("filename must be a string (a base name)")
        if not filename.lower().endswith(EXTENSIONS[fmt]):
            filename += EXTENSIONS[fmt][0]
        try:
            filename = check_base_name(filename)
        except ValueError as exc:
            raise invalid_params(f"filename: {exc}") from None
    return SnapshotRequest(fmt, quality, filename)


class SnapshotTaker:
    """Takes snapshots into `snapshots.path` and tells the file index about them."""

    def __init__(
        self,
        config: Config,
        captures: CaptureManager,
        bus: EventBus,
        note_written: Callable[[str], Any],
    ) -> None:
        self.config = config
        self.directory = os.path.abspath(config.snapshots.path)
        self.captures = captures
        self.bus = bus
        self.note_written = note_written

    async def start(self) -> None:
        os.makedirs(self.directory, mode=0o750, exist_ok=True)

    async def stop(self) -> None:
        return None

    def apply(self, config: Config) -> None:
        self.config = config  # quality, thresholds, frame timeout

    async def take(self, camera: Camera, request: SnapshotRequest) -> dict[str, Any]:
        """The `take_snapshot` result; -1010 when storage is critical, -1001 when the camera
        gives no frame."""
        warning = check_storage(self.directory, self.config.storage)
        frame = await self._frame(camera)
        loop = asyncio.get_running_loop()
        try:
            image = await loop.run_in_executor(None, _encode, frame, request)
        except encoders.EncodeError as exc:
            raise RpcError(CAMERA_NOT_AVAILABLE, data={"reason": str(exc)}) from None
        name = request.filename or self._free_name(camera, request.format)
        path = os.path.join(self.directory, name)
        await loop.run_in_executor(None, _write_atomically, path, image)
        self.note_written(name)
        self.bus.publish(SnapshotTaken(camera.device, name, path, len(image), frame.wall_time))
        return {
            "device": camera.device,
            "filename": name,
            "status": "completed",
            "timestamp": utc_timestamp(frame.wall_time),
            "file_size": len(image),
            "file_path": path,
            "download_url": DOWNLOAD_PREFIX + quote(name),
            "format": request.format,
            "resolution": f"{frame.width}x{frame.height}",
            "storage_warning": warning,
        }

    async def _frame(self, camera: Camera) -> Frame:
        timeout = self.config.capture.frame_timeout
        try:
            subscription = await self.captures.subscribe(camera)
        except CaptureError as exc:
            raise RpcError(CAMERA_NOT_AVAILABLE, data={"reason": str(exc)}) from None
        try:
            frame = subscription.latest()
            capture = subscription.capture
            interval = 1 / capture.fps if capture.fps else 0.1
            if frame is not None and time.monotonic() - frame.dequeued_at <= (
                FRESH_INTERVALS * interval
            ):
                return frame
            return await subscription.next_frame(timeout)
        except CaptureError as exc:
            raise RpcError(CAMERA_NOT_AVAILABLE, data={"reason": str(exc)}) from None
        finally:
            subscription.close()

    def _free_name(self, camera: Camera, fmt: str) -> str:
        """`cameraN_snapshot_YYYY-MM-DD_HH-MM-SS.ext` (UTC), with `_2`, `_3`... rather than
        replacing a file taken in the same second."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%d_%H-%M-%S")
        stem = f"{camera.stream_name}_snapshot_{stamp}"
        extension = EXTENSIONS[fmt][0]
        name, counter = stem + extension, 1
        while os.path.lexists(os.path.join(self.directory, name)):
            counter += 1
            name = f"{stem}_{counter}{extension}"
        return name


def _encode(frame: Frame, request: SnapshotRequest) -> bytes:
    if request.format == "png":
        return encoders.png_from_frame(frame)
    return encoders.jpeg_from_frame(frame, request.quality)


def _write_atomically(path: str, data: bytes) -> None:
    """Readers see the old file or the whole new one, never a part."""
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temporary)
        raise
    os.close(fd)
    os.replace(temporary, path)
