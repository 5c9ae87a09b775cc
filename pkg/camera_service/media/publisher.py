"""Publishing captured cameras to a media server over RTSP (PROTOCOL 10).

With `media.publish_rtsp = true` every captured camera is pushed to
`rtsp://<media.host>:<media.rtsp_port>/cameraN` (ANNOUNCE + RECORD, RTP interleaved over TCP)
as MJPEG (RFC 2435): an MJPG camera's JPEGs go out as the camera sent them, a YUYV camera's
frames are encoded to JPEG first. MJPEG needs no encoder state, so a reconnect can resume at
any frame.

Each camera's push runs in a child process (`media/rtsp_push.py`, PyAV's RTSP muxer): PyAV
holds the GIL while FFmpeg waits for the server, which in a thread would freeze the whole
service. Frames go to the child through a pipe; when the pipe already holds more than
`MAX_BUFFERED_BYTES` the frame is dropped, so a slow or absent server never blocks the
capture, the event loop or any other consumer: it only skips frames. When the child fails
(server gone, refused, silent) it is started again after 1 s, 2 s, 4 s, ... up to 30 s.

`publish_on = "demand"` attaches to captures that other consumers keep running (a passive
consumer, which does not keep the capture alive); `"always"` is a consumer of every connected
camera itself, so every camera is captured and published all the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from camera_service.cameras.model import CONNECTED
from camera_service.cameras.streams import StreamUrls
from camera_service.core.events import CameraChanged, CaptureStarted, EventBus, Subscription
from camera_service.media.capture import CaptureError, CaptureManager, Frame, FrameSubscription
from camera_service.media.rtsp_push import FRAME_HEAD

if TYPE_CHECKING:
    from camera_service.cameras.model import Camera
    from camera_service.cameras.monitor import CameraMonitor
    from camera_service.config import Config

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0
# FFmpeg's socket timeout in the child; the parent gives the handshake twice that, then kills.
IO_TIMEOUT_SECONDS = 5.0
STOP_SECONDS = 2.0  # a stopped child gets this long to close its stream before it is killed
# Frames in the pipe not yet read by the child: beyond this, new frames are dropped (about
# two YUYV 1280x720 frames, or many JPEGs).
MAX_BUFFERED_BYTES = 4 * 1024 * 1024

# Publisher states shown by get_streams.
CONNECTING, PUBLISHING, RETRYING, STOPPED = ("connecting", "publishing", "retrying", "stopped")


def retry_delays(first: float | None = None, cap: float = MAX_RETRY_SECONDS) -> Iterator[float]:
    """1, 2, 4, 8, 16, 30, 30, ... seconds: the waits between reconnect attempts."""
    delay = FIRST_RETRY_SECONDS if first is None else first
    while True:
        yield delay
        delay = min(delay * 2, cap)


@dataclass(slots=True)
class PublisherStats:
    state: str = CONNECTING
    connects: int = 0
    frames_sent: int = 0  # muxed by the child, over every connection
    bytes_sent: int = 0
    frames_dropped: int = 0  # offered while the pipe was full or no child was running
    last_error: str | None = None
    retry_at: float | None = None  # time.monotonic() of the next attempt while retrying


class CameraPublisher:
    """Pushes one camera's frames to one RTSP URL through a child process."""

    def __init__(self, camera: Camera, url: str, quality: int) -> None:
        self.camera = camera
        self.url = url
        self.quality = quality
        self.stats = PublisherStats()
        self.subscription: FrameSubscription | None = None
        self._stdin: asyncio.StreamWriter | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Totals of the connections before the current one (the child counts its own).
        self._sent_before = (0, 0)

    def attach(self, subscription: FrameSubscription) -> None:
        """Take frames from `subscription` (a new one after the capture restarted)."""
        old, self.subscription = self.subscription, subscription
        if old is not None and old is not subscription:
            old.close()
        subscription.on_frame = self.offer
        if self._task is None and not self._stopping:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def offer(self, frame: Frame) -> None:
        """Write the frame into the child's pipe, or drop it when the pipe is full."""
        stdin = self._stdin
        if stdin is None or stdin.is_closing():
            self.stats.frames_dropped += 1
            return
        if stdin.transport.get_write_buffer_size() > MAX_BUFFERED_BYTES:
            self.stats.frames_dropped += 1
            return
        head = FRAME_HEAD.pack(
            frame.fourcc.encode("ascii"),
            frame.width,
            frame.height,
            frame.timestamp,
            len(frame.data),
        )
        stdin.write(head)
        stdin.write(frame.data)

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None
        if self._stdin is not None:
            self._stdin.close()  # the child closes its stream at the end of its input
        if self._proc is not None and self.stats.state != PUBLISHING:
            self._proc.kill()  # still in the handshake: nothing to close cleanly
        if self._task is None:
            self.stats.state = STOPPED

    async def join(self) -> None:
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=STOP_SECONDS + 1)

    # ---- the child's lifecycle ---------------------------------------------------------------

    async def _run(self) -> None:
        delays = retry_delays()
        try:
            while not self._stopping:
                self.stats.state = CONNECTING
                reason = await self._session()
                if self._stopping:
                    break
                if self.stats.state == PUBLISHING:
                    delays = retry_delays()  # it worked for a while: start from 1 s again
                delay = next(delays)
                self.stats.last_error = reason
                log.warning(
                    "RTSP publishing of %s to %s failed (%s); retrying in %g s",
                    self.camera.stream_name,
                    self.url,
                    reason,
                    delay,
                )
                self.stats.state = RETRYING
                self.stats.retry_at = time.monotonic() + delay
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), delay)
                self.stats.retry_at = None
        finally:
            self.stats.state = STOPPED

    async def _session(self) -> str:
        """One child, one connection; returns why it ended."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "camera_service.media.rtsp_push",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        settings = {"url": self.url, "quality": self.quality, "timeout": IO_TIMEOUT_SECONDS}
        proc.stdin.write(json.dumps(settings).encode() + b"\n")
        self._proc, self._stdin = proc, proc.stdin
        errors = asyncio.get_running_loop().create_task(_tail(proc.stderr))
        reason = "the publisher process ended"
        try:
            await self._follow(proc.stdout)
        except TimeoutError:
            reason = f"the server did not accept the stream within {2 * IO_TIMEOUT_SECONDS:g} s"
        finally:
            self._stdin = None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), STOP_SECONDS)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            self._proc = None
            self._sent_before = (self.stats.frames_sent, self.stats.bytes_sent)
        last_line = await errors
        return last_line or reason

    async def _follow(self, stdout: asyncio.StreamReader) -> None:
        """Read the child's reports until it exits; TimeoutError if the handshake hangs."""
        connected = False
        while True:
            read = stdout.readline()
            line = await (read if connected else asyncio.wait_for(read, 2 * IO_TIMEOUT_SECONDS))
            if not line:
                return
            if line == b"connected\n":
                connected = True
                self.stats.state = PUBLISHING
                self.stats.connects += 1
                self.stats.last_error = None
                log.info("publishing %s to %s", self.camera.stream_name, self.url)
            elif line.startswith(b"sent "):
                frames, sent = (int(n) for n in line.split()[1:3])
                self.stats.frames_sent = self._sent_before[0] + frames
                self.stats.bytes_sent = self._sent_before[1] + sent


async def _tail(stream: asyncio.StreamReader) -> str:
    """The child's last stderr line (its reason), reading everything so it never blocks."""
    last = b""
    while line := await stream.readline():
        if line.strip():
            last = line.strip()
    return last.decode(errors="replace")[:500]


class RtspPublisher:
    """The publishers of every camera, started and stopped with the configuration."""

    def __init__(
        self,
        config: Config,
        bus: EventBus,
        monitor: CameraMonitor,
        captures: CaptureManager,
    ) -> None:
        self.config = config
        self.bus = bus
        self.monitor = monitor
        self.captures = captures
        self.publishers: dict[str, CameraPublisher] = {}
        self._subscriptions: list[Subscription[Any]] = []
        # publish_on = "always": the task per camera that keeps a capture running for it.
        self._consumers: dict[str, asyncio.Task[None]] = {}
        self._first_sync: asyncio.Task[None] | None = None
        self._running = False

    async def start(self) -> None:
        self._running = True
        self._subscriptions = [
            self.bus.subscribe(CaptureStarted, self._on_capture_started),
            self.bus.subscribe(CameraChanged, self._on_camera_changed),
        ]
        # Cameras found by the first scan are not announced on the bus: look once it is done.
        self._first_sync = asyncio.get_running_loop().create_task(self._sync_when_ready())

    async def _sync_when_ready(self) -> None:
        await self.monitor.ready.wait()
        self._sync()

    async def stop(self) -> None:
        self._running = False
        if self._first_sync is not None:
            self._first_sync.cancel()
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions = []
        for task in tuple(self._consumers.values()):
            task.cancel()
        self._consumers.clear()
        publishers = list(self.publishers.values())
        self.publishers.clear()
        for publisher in publishers:
            publisher.stop()
        for publisher in publishers:
            await publisher.join()

    def apply(self, config: Config) -> None:
        old = self.config.media
        self.config = config
        new = config.media
        if (old.host, old.rtsp_port, old.publish_rtsp, old.publish_on) != (
            new.host,
            new.rtsp_port,
            new.publish_rtsp,
            new.publish_on,
        ):
            for device in set(self.publishers) | set(self._consumers):
                self._drop(device)
            self._sync()

    # ---- what get_streams shows --------------------------------------------------------------

    def stats(self, device: str) -> dict[str, Any] | None:
        publisher = self.publishers.get(device)
        if publisher is None:
            return None
        s = publisher.stats
        retry_in = None
        if s.retry_at is not None:
            retry_in = round(max(0.0, s.retry_at - time.monotonic()), 1)
        return {
            "url": publisher.url,
            "state": s.state,
            "connects": s.connects,
            "frames_sent": s.frames_sent,
            "bytes_sent": s.bytes_sent,
            "frames_dropped": s.frames_dropped,
            "last_error": s.last_error,
            "retry_in": retry_in,
        }

    # ---- attaching to captures ---------------------------------------------------------------

    def _enabled(self) -> bool:
        return self._running and self.config.media.publish_rtsp

    def _sync(self) -> None:
        """Publish what the configuration asks for, from the cameras and captures as they are."""
        if not self._enabled():
            return
        if self.config.media.publish_on == "always":
            for camera in self.monitor.snapshot():
                if camera.status == CONNECTED:
                    self._keep_published(camera)
        else:
            for capture in self.captures.running():
                self._watch(capture.camera)

    def _on_capture_started(self, event: CaptureStarted) -> None:
        if self._enabled() and self.config.media.publish_on == "demand":
            self._watch(event.camera)

    def _on_camera_changed(self, event: CameraChanged) -> None:
        camera = event.camera
        if camera.status != CONNECTED:
            self._drop(camera.device)
        elif self._enabled() and self.config.media.publish_on == "always":
            self._keep_published(camera)

    def _publisher(self, camera: Camera) -> CameraPublisher:
        publisher = self.publishers.get(camera.device)
        if publisher is None:
            urls = StreamUrls.from_config(self.config)
            publisher = CameraPublisher(
                camera, urls.for_stream(camera.stream_name)["rtsp"], self.config.snapshots.quality
            )
            self.publishers[camera.device] = publisher
        return publisher

    def _watch(self, camera: Camera) -> None:
        subscription = self.captures.watch(camera)
        if subscription is None:
            return
        publisher = self._publisher(camera)
        publisher.attach(subscription)
        # The capture stopped (no consumer left, or unplugged): this publisher is done.
        subscription.on_error = lambda error: self._drop(camera.device, publisher)

    def _keep_published(self, camera: Camera) -> None:
        task = self._consumers.get(camera.device)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._consume(camera.device))
            self._consumers[camera.device] = task

    async def _consume(self, device: str) -> None:
        """`publish_on = "always"`: be a consumer of the camera, restarting its capture after
        failures with the same backoff as reconnects, until the camera goes away."""
        delays = retry_delays()
        while self._enabled():
            camera = self.monitor.get(device)
            if camera is None or camera.status != CONNECTED:
                return
            try:
                subscription = await self.captures.subscribe(camera)
            except CaptureError as exc:
                delay = next(delays)
                log.warning("cannot capture %s to publish it (%s)", device, exc)
                await asyncio.sleep(delay)
                continue
            ended: asyncio.Future[CaptureError] = asyncio.get_running_loop().create_future()

            def capture_ended(
                error: CaptureError, ended: asyncio.Future[CaptureError] = ended
            ) -> None:
                if not ended.done():
                    ended.set_result(error)

            subscription.on_error = capture_ended
            try:
                self._publisher(camera).attach(subscription)
                delays = retry_delays()
                await ended
            finally:
                subscription.close()

    def _drop(self, device: str, only: CameraPublisher | None = None) -> None:
        if only is None:
            task = self._consumers.pop(device, None)
            if task is not None:
                task.cancel()
        publisher = self.publishers.get(device)
        if publisher is None or (only is not None and publisher is not only):
            return
        del self.publishers[device]
        publisher.stop()
