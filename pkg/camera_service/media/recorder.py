"""Recordings (PROTOCOL 5.10, 5.11, 6): one session per camera, fed by the shared capture.

The session takes every frame of the camera's capture through `FrameSubscription.on_frame`
(on the event loop, where it only appends to a bounded queue; a full queue drops the frame and
counts it) and one worker thread per recording muxes or encodes them with PyAV
(`media/muxer.py`), so the loop never waits for the disk or the encoder. The worker splits the
recording into segments of `recording.segment_minutes` by frame time, each named by its own
start time (`cameraN_YYYY-MM-DD_HH-MM-SS.mp4`, UTC), and finalizes each segment when it closes.

A session ends exactly once, whichever comes first: `stop_recording`, its duration timer, the
camera vanishing or stalling (`FAILED`), the worker failing to write (disk full: `FAILED`,
the segment keeps what was written and stays playable) or the service stopping. Ending cancels
the timer, so a manual stop is never followed by a second, timed one (defect 17).
`RecordingChanged` events go on the bus; a handler that awaits `stop` publishes STOPPED in the
same loop step in which it returns, so the notification follows its response (defect 18).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from camera_service.core.events import EventBus, RecordingChanged
from camera_service.health import utc_timestamp
from camera_service.media.capture import CaptureError, CaptureManager, Frame
from camera_service.media.storage import check_storage
from camera_service.rpc.errors import (
    ALREADY_RECORDING,
    CAMERA_NOT_AVAILABLE,
    NOT_RECORDING,
    STORAGE_CRITICAL,
    RpcError,
)

if TYPE_CHECKING:
    from camera_service.cameras.model import Camera
    from camera_service.config import Config
    from camera_service.media.muxer import SegmentWriter, SourceFormat

log = logging.getLogger("camera_service.recorder")

STARTED = "STARTED"
SEGMENT = "SEGMENT"
STOPPED = "STOPPED"
FAILED = "FAILED"

FORMATS = ("mp4", "mkv")
RECORDABLE_FOURCCS = ("MJPG", "YUYV", "H264")
# The worker's queue holds at most this many bytes of frames, at least MIN and at most MAX
# frames (MJPEG 720p: MAX; YUYV 720p: 26, close to a second). Beyond it frames are dropped.
QUEUE_BYTES = 48 * 1024 * 1024
MIN_QUEUE_FRAMES = 8
MAX_QUEUE_FRAMES = 600
# The worker wakes this often and writes what arrived meanwhile: waking once per frame cost
# more CPU (thread switches, GIL hand-overs) than muxing the frame (measured: 0.45 % vs 0.02 %
# of a core for a 30 fps MJPEG camera). A crash loses at most this much more of the tail.
BATCH_SECONDS = 0.2
WATCHDOG_SECONDS = 0.5
WORKER_JOIN_SECONDS = 10.0
NAME_PATTERN = re.compile(r"camera(\d+)_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}(?:_\d+)?\.(?:mp4|mkv)")


def recording_fields(session: RecordingSession | None, now: float | None = None) -> dict[str, Any]:
    """The recording fields of the CAMERA object (PROTOCOL 5.16, end): one place for the camera
    list, `get_camera_status` and the MQTT bridge's state payload."""
    if session is None:
        return {
            "recording": False,
            "recording_session": None,
            "current_file": None,
            "elapsed_time": 0,
        }
    if now is None:
        now = time.monotonic()
    return {
        "recording": True,
        "recording_session": session.session_id,
        "current_file": session.current_file,
        "elapsed_time": round(max(0.0, now - session.started_mono), 3),
    }


def device_number_of(filename: str) -> int | None:
    """N of `cameraN_...` for a recording named by the service, else None."""
    match = NAME_PATTERN.fullmatch(filename)
    return int(match.group(1)) if match else None


def segment_name(directory: str, stream_name: str, wall_time: float, extension: str) -> str:
    """`cameraN_YYYY-MM-DD_HH-MM-SS.ext` (UTC) for a segment starting at `wall_time`, with
    `_2`, `_3`... rather than reusing a name that exists."""
    stamp = datetime.fromtimestamp(wall_time, UTC).strftime("%Y-%m-%d_%H-%M-%S")
    stem = f"{stream_name}_{stamp}"
    name, counter = f"{stem}.{extension}", 1
    while os.path.lexists(os.path.join(directory, name)):
        counter += 1
        name = f"{stem}_{counter}.{extension}"
    return name


def _failure_reason(exc: BaseException) -> str:
    number = getattr(exc, "errno", None)
    if number == errno.ENOSPC:
        return "the disk is full"
    if number == errno.EDQUOT:
        return "the disk quota is exhausted"
    if isinstance(exc, OSError) and exc.strerror:
        return f"writing the recording failed: {exc.strerror}"
    return f"writing the recording failed: {type(exc).__name__}"


class SegmentWorker:
    """The thread that writes one recording's frames, segment after segment."""

    def __init__(
        self,
        session: RecordingSession,
        writer: SegmentWriter,
        segment_seconds: Callable[[], float],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.session = session
        self.writer = writer
        self.segment_seconds = segment_seconds
        self.loop = loop
        # deque append/popleft are atomic: the loop appends, the worker pops, no lock.
        self.queue: deque[Frame] = deque()
        self.max_frames = 0  # set from the first frame's size
        self.written = 0
        self.dropped = 0
        self.closed_seconds = 0.0  # media seconds of the segments already closed
        self._finish = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"record-{session.camera.stream_name}", daemon=True
        )

    @property
    def recorded(self) -> float:
        """Seconds of media written so far (read from the loop; floats are swapped whole)."""
        return self.closed_seconds + self.writer.duration

    def start(self) -> None:
        self._thread.start()

    def offer(self, frame: Frame) -> None:
        """On the loop, for every frame: queue it, or drop it when the worker is behind."""
        if not self.max_frames:
            by_size = QUEUE_BYTES // max(1, len(frame.data))
            self.max_frames = min(MAX_QUEUE_FRAMES, max(MIN_QUEUE_FRAMES, by_size))
        if len(self.queue) >= self.max_frames:
            self.dropped += 1
            return
        self.queue.append(frame)

    def finish(self) -> None:
        """Close the open segment after the frames already queued, then end."""
        self._finish.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    # ---- the worker thread -----------------------------------------------------------------

    def _run(self) -> None:
        call = self.loop.call_soon_threadsafe
        writer: SegmentWriter | None = self.writer
        reason: str | None = None
        frames = self.queue
        try:
            while True:
                finishing = self._finish.wait(BATCH_SECONDS)
                while frames:
                    frame = frames.popleft()
                    assert writer is not None
                    if (
                        writer.frames
                        and writer.duration >= self.segment_seconds()
                        and writer.can_start(frame)
                    ):
                        writer = self._next_segment(writer, frame)
                    writer.write(frame)
                    self.written += 1
                if finishing:
                    break
            if writer is not None:
                closing, writer = writer, None
                closing.close()
                call(self.session._segment_closed, closing.path, closing.duration)
        except Exception as exc:
            reason = _failure_reason(exc)
            log.warning(
                "recording of %s failed: %s",
                self.session.camera.device,
                reason,
                exc_info=not isinstance(exc, OSError),
            )
            if writer is not None:
                writer.abort()
                call(self.session._segment_closed, writer.path, writer.duration)
        call(self.session._worker_done, reason)

    def _next_segment(self, writer: SegmentWriter, frame: Frame) -> SegmentWriter:
        from camera_service.media.muxer import SegmentWriter

        writer.close()
        self.closed_seconds += writer.duration
        self.loop.call_soon_threadsafe(self.session._segment_closed, writer.path, writer.duration)
        session = self.session
        name = segment_name(
            session.directory, session.camera.stream_name, frame.wall_time, session.format
        )
        path = os.path.join(session.directory, name)
        next_writer = SegmentWriter(path, session.format, writer.source, session.codec)
        self.writer = next_writer
        self.loop.call_soon_threadsafe(session._segment_opened, name, self.closed_seconds)
        return next_writer


@dataclass(eq=False)
class RecordingSession:
    """One camera's recording, as the loop sees it."""

    recorder: Recorder
    camera: Camera
    session_id: str
    format: str  # "mp4" | "mkv"
    codec: str  # recording.codec when it started
    duration: int | None  # requested seconds, None = until stopped
    directory: str
    started_wall: float
    started_mono: float
    files: list[str] = field(default_factory=list)
    current_file: str | None = None
    worker: SegmentWorker | None = None
    subscription: Any = None
    last_frame_mono: float = 0.0
    ending: bool = False
    result: dict[str, Any] | None = None
    _done: asyncio.Future[str | None] | None = None
    _ended: asyncio.Future[dict[str, Any]] | None = None
    _timer: asyncio.TimerHandle | None = None
    _watchdog: asyncio.TimerHandle | None = None

    @property
    def recorded(self) -> float:
        return self.worker.recorded if self.worker is not None else 0.0

    # ---- called on the loop by the capture and the worker ---------------------------------

    def _on_frame(self, frame: Frame) -> None:
        self.last_frame_mono = time.monotonic()
        if self.worker is not None and not self.ending:
            self.worker.offer(frame)

    def _on_capture_error(self, error: CaptureError) -> None:
        self.recorder._end_soon(self, FAILED, str(error))

    def _segment_opened(self, name: str, recorded: float) -> None:
        self.files.append(name)
        self.current_file = name
        self.recorder._changed()
        self.recorder.bus.publish(
            RecordingChanged(self.camera.device, SEGMENT, self.session_id, name, round(recorded, 3))
        )

    def _segment_closed(self, path: str, duration: float) -> None:
        self.recorder._segment_closed(os.path.basename(path), duration)

    def _worker_done(self, reason: str | None) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(reason)
        if reason is not None:
            self.recorder._end_soon(self, FAILED, reason)


class Recorder:
    """Owns the recording sessions: start, stop, timers, and the end of each exactly once."""

    def __init__(
        self,
        config: Config,
        captures: CaptureManager,
        bus: EventBus,
        note_written: Callable[[str], Any],
        remember_duration: Callable[[str, float], None],
    ) -> None:
        self.config = config
        self.directory = os.path.abspath(config.recording.path)
        self.captures = captures
        self.bus = bus
        self.note_written = note_written
        self.remember_duration = remember_duration
        self.sessions: dict[str, RecordingSession] = {}
        self.version = 0  # changes whenever the recording fields of some camera change
        # Tests set this to a few seconds; the config key stays whole minutes (PROTOCOL 8).
        self.segment_seconds_override: float | None = None
        self._starting: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # ---- component ---------------------------------------------------------------------------

    async def start(self) -> None:
        os.makedirs(self.directory, mode=0o750, exist_ok=True)

    async def stop(self) -> None:
        """Finalize every open segment (PROTOCOL 5.10: shutdown ends recordings cleanly)."""
        self._closed = True  # a start still in flight must not outlive the service
        sessions = list(self.sessions.values())
        if sessions:
            await asyncio.gather(
                *(self._end(s, STOPPED, "the service is shutting down") for s in sessions),
                return_exceptions=True,
            )
        for task in list(self._tasks):
            await asyncio.wait([task], timeout=WORKER_JOIN_SECONDS)

    def apply(self, config: Config) -> None:
        self.config = config  # codec and segment length for what starts or rotates next

    # ---- queries -----------------------------------------------------------------------------

    @property
    def segment_seconds(self) -> float:
        if self.segment_seconds_override is not None:
            return self.segment_seconds_override
        return self.config.recording.segment_minutes * 60.0

    @property
    def active(self) -> bool:
        return bool(self.sessions)

    def session_of(self, device: str) -> RecordingSession | None:
        return self.sessions.get(device)

    def fields(self, camera: Camera) -> dict[str, Any]:
        """The CAMERA object's recording fields for `camera`."""
        return recording_fields(self.sessions.get(camera.device))

    def active_files(self) -> set[str]:
        """Segments being written now: never deleted, listed without a duration."""
        return {s.current_file for s in self.sessions.values() if s.current_file is not None}

    # ---- start and stop ----------------------------------------------------------------------

    async def start_recording(
        self, camera: Camera, container_format: str, duration: int | None
    ) -> dict[str, Any]:
        """The `start_recording` result; -1006, -1010, -1001 in this order (PROTOCOL 5.10)."""
        device = camera.device
        if device in self.sessions or device in self._starting:
            session = self.sessions.get(device)
            data: dict[str, Any] = {"reason": "this camera is already recording", "device": device}
            if session is not None:
                data["session_id"] = session.session_id
            raise RpcError(ALREADY_RECORDING, data=data)
        storage = self.config.storage
        os.makedirs(self.directory, mode=0o750, exist_ok=True)
        warning = check_storage(self.directory, storage)
        if warning:
            log.warning(
                "disk space is low: used space at or above storage.warn_percent",
                extra={"warn_percent": storage.warn_percent, "device": device},
            )
        self._starting.add(device)
        try:
            return await self._start(camera, container_format, duration, warning)
        finally:
            self._starting.discard(device)

    async def _start(
        self, camera: Camera, container_format: str, duration: int | None, warning: bool
    ) -> dict[str, Any]:
        try:
            subscription = await self.captures.subscribe(camera)
        except CaptureError as exc:
            raise RpcError(CAMERA_NOT_AVAILABLE, data={"reason": str(exc)}) from None
        try:
            capture = subscription.capture
            if capture.format not in RECORDABLE_FOURCCS:
                raise RpcError(
                    CAMERA_NOT_AVAILABLE,
                    data={"reason": f"cannot record the camera's {capture.format} frames"},
                )
            session = RecordingSession(
                recorder=self,
                camera=camera,
                session_id=str(uuid.uuid4()),
                format=container_format,
                codec=self.config.recording.codec,
                duration=duration,
                directory=self.directory,
                started_wall=time.time(),
                started_mono=time.monotonic(),
            )
            name = segment_name(
                self.directory, camera.stream_name, session.started_wall, container_format
            )
            loop = asyncio.get_running_loop()
            source = _source_of(capture)
            try:
                # PyAV's import and the file's creation stay off the loop.
                writer = await loop.run_in_executor(
                    None, _open_writer, os.path.join(self.directory, name), session, source
                )
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise RpcError(
                        STORAGE_CRITICAL, data={"reason": "no space left for a new recording"}
                    ) from None
                raise
            if self._closed or subscription.closed or capture.error is not None:
                writer.abort()
                with contextlib.suppress(OSError):
                    os.unlink(writer.path)  # nothing recorded: leave no empty file
                reason = "the service is shutting down" if self._closed else "the capture stopped"
                if capture.error is not None:
                    reason = str(capture.error)
                raise RpcError(CAMERA_NOT_AVAILABLE, data={"reason": reason})
        except BaseException:
            subscription.close()
            raise
        worker = SegmentWorker(session, writer, lambda: self.segment_seconds, loop)
        session.worker = worker
        session.subscription = subscription
        session.files.append(name)
        session.current_file = name
        session.last_frame_mono = time.monotonic()
        session._done = loop.create_future()
        session._ended = loop.create_future()
        self.sessions[camera.device] = session
        worker.start()
        subscription.on_frame = session._on_frame
        subscription.on_error = session._on_capture_error
        if duration is not None:
            session._timer = loop.call_later(duration, self._end_soon, session, STOPPED, None)
        session._watchdog = loop.call_later(WATCHDOG_SECONDS, self._check_stall, session)
        self._changed()
        log.info(
            "recording of %s started",
            camera.device,
            extra={"session_id": session.session_id, "file": name, "codec": session.codec},
        )
        self.bus.publish(
            RecordingChanged(camera.device, STARTED, session.session_id, name, duration)
        )
        return {
            "device": camera.device,
            "session_id": session.session_id,
            "filename": name,
            "status": STARTED,
            "start_time": utc_timestamp(session.started_wall),
            "duration": duration,
            "format": container_format,
            "storage_warning": warning,
        }

    async def stop_recording(self, camera: Camera) -> dict[str, Any]:
        """The `stop_recording` result; -1003 when the camera is not recording."""
        session = self.sessions.get(camera.device)
        if session is None:
            raise RpcError(
                NOT_RECORDING,
                data={"reason": "this camera has no active recording", "device": camera.device},
            )
        return await self._end(session, STOPPED, None)

    # ---- ending ------------------------------------------------------------------------------

    def _end_soon(self, session: RecordingSession, status: str, reason: str | None) -> None:
        """End `session` from a callback (timer, capture error, worker failure)."""
        if session.ending:
            return
        task = asyncio.get_running_loop().create_task(self._end(session, status, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end(
        self, session: RecordingSession, status: str, reason: str | None
    ) -> dict[str, Any]:
        """Finalize and report `session` once; later callers get the same result."""
        assert session._ended is not None and session._done is not None
        if session.ending:
            return await asyncio.shield(session._ended)
        session.ending = True
        for handle in (session._timer, session._watchdog):
            if handle is not None:
                handle.cancel()
        if session.subscription is not None:
            session.subscription.close()
        worker = session.worker
        assert worker is not None
        worker.finish()
        done = session._done
        try:
            failure = await asyncio.shield(done)
        except asyncio.CancelledError:
            # The caller went away (its connection closed): finish without it, or the camera
            # would stay "recording" for good.
            done.add_done_callback(lambda f: self._finalize(session, status, reason, f.result()))
            raise
        return self._finalize(session, status, reason, failure)

    def _finalize(
        self, session: RecordingSession, status: str, reason: str | None, failure: str | None
    ) -> dict[str, Any]:
        """Forget the session, build the result and publish STOPPED/FAILED, synchronously:
        the caller returns in this same loop step, so its response goes out first."""
        assert session._ended is not None and session.worker is not None
        worker = session.worker
        if failure is not None and status != FAILED:
            status, reason = FAILED, failure
        ended_wall = time.time()
        if self.sessions.get(session.camera.device) is session:
            del self.sessions[session.camera.device]
        self._changed()
        recorded = round(worker.recorded, 3)
        last = session.files[-1]
        size = 0
        for name in session.files:
            try:
                size += os.stat(os.path.join(session.directory, name)).st_size
            except OSError:
                pass
        log.info(
            "recording of %s %s",
            session.camera.device,
            "failed" if status == FAILED else "stopped",
            extra={
                "session_id": session.session_id,
                "reason": reason,
                "segments": len(session.files),
                "frames_written": worker.written,
                "frames_dropped": worker.dropped,
                "seconds": recorded,
            },
        )
        result = {
            "device": session.camera.device,
            "session_id": session.session_id,
            "filename": session.files[0],
            "files": list(session.files),
            "status": status,
            "start_time": utc_timestamp(session.started_wall),
            "end_time": utc_timestamp(ended_wall),
            "duration": recorded,
            "file_size": size,
        }
        session.result = result
        session._ended.set_result(result)
        self.bus.publish(
            RecordingChanged(
                session.camera.device,
                status,
                session.session_id,
                last,
                recorded,
                reason if status == FAILED else None,
            )
        )
        return result

    def _check_stall(self, session: RecordingSession) -> None:
        """FAILED when the camera sent nothing for `capture.frame_timeout` s (PROTOCOL 8)."""
        if session.ending:
            return
        timeout = self.config.capture.frame_timeout
        if time.monotonic() - session.last_frame_mono > timeout:
            self._end_soon(session, FAILED, f"no frame from the camera within {timeout:g} s")
            return
        loop = asyncio.get_running_loop()
        session._watchdog = loop.call_later(WATCHDOG_SECONDS, self._check_stall, session)

    def _segment_closed(self, name: str, duration: float) -> None:
        self.note_written(name)
        self.remember_duration(name, round(duration, 3))

    def _changed(self) -> None:
        self.version += 1


def _source_of(capture: Any) -> SourceFormat:
    from camera_service.media.muxer import SourceFormat

    return SourceFormat(capture.format, capture.width, capture.height, capture.fps)


def _open_writer(path: str, session: RecordingSession, source: SourceFormat) -> SegmentWriter:
    from camera_service.media.muxer import SegmentWriter

    return SegmentWriter(path, session.format, source, session.codec)
