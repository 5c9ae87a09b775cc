"""The index of `recording.path` (the same FileIndex as snapshots) and each recording's
duration, read from the container.

Reading a duration means opening the file with FFmpeg (a fragmented MP4 of half an hour has
thousands of fragments to walk), so it never happens on the event loop: the recorder tells
`RecordingDurations` each segment's duration when it closes it, and any other file (copied
in, written before a restart, cut by a crash) is read once in a worker thread when a client
first asks for it, then cached until its size or modification time changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from camera_service.media.files import FileEntry, FileIndex

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


def _read_all(paths: list[str]) -> list[float | None]:
    return [container_duration(path) for path in paths]


class RecordingDurations:
    """Durations of the indexed recordings, keyed by (name, size, mtime)."""

    def __init__(self, index: FileIndex) -> None:
        self.index = index
        self._known: dict[str, tuple[int, int, float | None]] = {}

    def remember(self, name: str, duration: float | None) -> None:
        """The recorder closed `name` and knows its duration: nobody needs to read it."""
        entry = self.index.note_written(name)
        if entry is not None:
            self._known[name] = (entry.size, entry.mtime_ns, duration)

    def get(self, entry: FileEntry) -> float | None:
        """The cached duration of `entry` (None when unknown or unreadable)."""
        known = self._known.get(entry.name)
        if known is not None and known[0] == entry.size and known[1] == entry.mtime_ns:
            return known[2]
        return None

    async def fill(self, entries: Iterable[FileEntry]) -> None:
        """Read the durations not cached yet, in a worker thread."""
        missing = []
        for entry in entries:
            known = self._known.get(entry.name)
            if known is None or known[0] != entry.size or known[1] != entry.mtime_ns:
                missing.append(entry)
        if not missing:
            return
        paths = [self.index.path_of(entry.name) for entry in missing]
        values = await asyncio.get_running_loop().run_in_executor(None, _read_all, paths)
        for entry, value in zip(missing, values, strict=True):
            self._known[entry.name] = (entry.size, entry.mtime_ns, value)
        if len(self._known) > 2 * self.index.count() + 100:  # forget deleted files
            self._known = {
                name: v for name, v in self._known.items() if self.index.get(name) is not None
            }


def recording_index(config: Config, bus: EventBus) -> FileIndex:
    """The index of `recording.path` (durations are kept by RecordingDurations)."""
    return FileIndex(RECORDING_KIND, config.recording.path, RECORDING_URL_PREFIX, bus)
