"""Stills for `mqtt.snapshot_interval`: a JPEG of a camera's current picture, from the shared
capture, without writing a snapshot file (the broker keeps the newest one retained; filling
the snapshots directory every few seconds would be a retention problem nobody asked for)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from camera_service.media import encoders

if TYPE_CHECKING:
    from camera_service.cameras.model import Camera
    from camera_service.media.capture import CaptureManager


async def take_still(
    captures: CaptureManager, camera: Camera, quality: int, timeout: float
) -> bytes:
    """The camera's next frame as JPEG (an MJPG camera's own bytes; YUYV encoded in a worker
    thread). Raises CaptureError / EncodeError when the camera gives no usable frame."""
    subscription = await captures.subscribe(camera)
    try:
        frame = await subscription.next_frame(timeout)
    finally:
        # The capture idle-stops after `capture.idle_stop_seconds` unless something else
        # (or a short interval) keeps it running.
        subscription.close()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, encoders.jpeg_from_frame, frame, quality)
