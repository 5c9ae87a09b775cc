"""Live view: `GET /stream/cameraN.mjpeg` (PROTOCOL 7) and the `get_streams` view (5.16).

Each viewer is a consumer of the camera's shared capture and gets its newest frame as one part
of a `multipart/x-mixed-replace` response: a viewer that reads slowly skips frames (the
HTTP layer writes only as fast as it reads), so nothing queues and nobody else waits. MJPG
frames go out as the camera sent them; a YUYV frame is encoded once, in a worker thread, for
all viewers of that frame. `?fps=N` caps one viewer's rate. An unplug ends the responses.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from camera_service.auth.http_credentials import http_session
from camera_service.auth.roles import ROLE_LEVELS
from camera_service.media import encoders
from camera_service.media.capture import CaptureError, CaptureManager, Frame, FrameSubscription
from camera_service.web.responses import AnyResponse, Request, Response, json_response, not_found
from camera_service.web.streaming import Part, multipart_response

if TYPE_CHECKING:
    from camera_service.auth.authenticator import Authenticator
    from camera_service.cameras.monitor import CameraMonitor
    from camera_service.config import Config

STREAM_PREFIX = "/stream/"
_STREAM_PATH = re.compile(r"camera(0|[1-9][0-9]{0,8})\.mjpeg")
JPEG = "image/jpeg"


@dataclass(slots=True)
class _CameraViewers:
    """Viewers of one camera, and the YUYV frame they last had encoded."""

    count: int = 0
    bytes_sent: int = 0
    encoded_frame: Frame | None = None
    encoded: asyncio.Future[bytes] | None = None
    encodes: int = field(default=0)


class LiveView:
    """The live view route and the stream table."""

    def __init__(
        self,
        config: Config,
        monitor: CameraMonitor,
        captures: CaptureManager,
        authenticator: Authenticator,
    ) -> None:
        self.config = config
        self.monitor = monitor
        self.captures = captures
        self.authenticator = authenticator
        self.viewers: dict[str, _CameraViewers] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def apply(self, config: Config) -> None:
        self.config = config  # JPEG quality of encoded YUYV frames, frame timeout

    # ---- HTTP --------------------------------------------------------------------------------

    async def __call__(self, request: Request) -> AnyResponse:
        session = http_session(self.authenticator, request, ROLE_LEVELS["viewer"])
        if isinstance(session, Response):
            return session
        match = _STREAM_PATH.fullmatch(request.path[len(STREAM_PREFIX) :])
        camera = self.monitor.get(f"camera{match.group(1)}") if match else None
        if camera is None:
            return not_found()
        max_fps = _fps_param(request.query.get("fps"))
        if max_fps is None:
            return json_response(400, {"error": "fps must be a number > 0"})
        try:
            subscription = await self.captures.subscribe(camera)
        except CaptureError as exc:
            return json_response(503, {"error": "camera cannot stream", "reason": str(exc)})
        viewers = self.viewers.setdefault(camera.device, _CameraViewers())
        viewers.count += 1

        def finished() -> None:
            viewers.count -= 1
            subscription.close()

        return multipart_response(self._parts(subscription, viewers, max_fps), on_close=finished)

    async def _parts(
        self, subscription: FrameSubscription, viewers: _CameraViewers, max_fps: float
    ) -> AsyncIterator[Part]:
        min_gap = 1.0 / max_fps if max_fps != float("inf") else 0.0
        next_at = 0.0
        while True:
            if min_gap:
                wait = next_at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)  # frames meanwhile are skipped, not queued
                next_at = max(next_at + min_gap, time.monotonic())
            try:
                frame = await subscription.next_frame(self.config.capture.frame_timeout)
                data = await self._jpeg(viewers, frame)
            except (CaptureError, encoders.EncodeError):
                return  # unplug, stall or broken frames: the response ends cleanly
            viewers.bytes_sent += len(data)
            yield JPEG, data, frame.wall_time

    async def _jpeg(self, viewers: _CameraViewers, frame: Frame) -> bytes:
        if frame.fourcc == "MJPG":
            return frame.data
        if viewers.encoded_frame is not frame or viewers.encoded is None:
            viewers.encoded_frame = frame
            viewers.encodes += 1
            loop = asyncio.get_running_loop()
            viewers.encoded = loop.run_in_executor(
                None, encoders.jpeg_from_frame, frame, self.config.snapshots.quality
            )
        return await asyncio.shield(viewers.encoded)

    # ---- get_streams -------------------------------------------------------------------------

    def streams(self) -> list[dict[str, Any]]:
        """One entry per running capture (PROTOCOL 5.16)."""
        out = []
        for capture in self.captures.running():
            camera = capture.camera
            viewers = self.viewers.get(camera.device) or _CameraViewers()
            fps = capture.fps
            out.append(
                {
                    "name": camera.stream_name,
                    "device": camera.device,
                    "source": "v4l2",
                    "ready": capture.latest is not None,
                    "readers": viewers.count,
                    "bytes_sent": viewers.bytes_sent,
                    "format": capture.format,
                    "resolution": f"{capture.width}x{capture.height}",
                    "fps": _number(fps),
                }
            )
        return out


def _fps_param(text: str | None) -> float | None:
    """`?fps=N` as a cap (inf when absent); None when it is not a number > 0."""
    if text is None:
        return float("inf")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value < float("inf") else None


def _number(rate: Any) -> int | float:
    if rate is None:
        return 0
    value = float(rate)
    return int(value) if value.is_integer() else round(value, 3)
