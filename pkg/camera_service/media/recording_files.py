"""The index of `recording.path` (the same FileIndex as snapshots) and the one detail it
reads from a recording: its duration, from the container.

The recorder tells the index each segment's duration when it closes it, so the service's own
files are never opened for it; a file that arrived otherwise (copied in, or cut by a crash)
is read once with PyAV (imported then) and cached until it changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from camera_service.media.files import FileIndex

if TYPE_CHECKING:
    from camera_service.config import Config
    from camera_service.core.events import EventBus

RECORDING_KIND = "recording"
RECORDING_URL_PREFIX = "/files/recordings/"
AV_TIME_BASE = 1_000_000


def container_duration(path: str) -> float | None:
    """Seconds of media in the file, as the container says; None when it cannot say."""
    import av

    try:
        with av.open(path, mode="r") as container:
            if container.duration is not None and container.duration > 0:
                return round(container.duration / AV_TIME_BASE, 3)
            for stream in container.streams.video:
                if stream.duration is not None and stream.time_base is not None:
                    return round(float(stream.duration * stream.time_base), 3)
    except (av.error.FFmpegError, OSError):
        return None  # not a container FFmpeg can read (or cut before its header): unknown
    return None


def recording_index(config: Config, bus: EventBus) -> FileIndex:
    """The index of `recording.path`; each file's detail is its duration in seconds."""
    return FileIndex(
        RECORDING_KIND,
        config.recording.path,
        RECORDING_URL_PREFIX,
        bus,
        probe=container_duration,
    )
