"""Publishing captured cameras to a media server over RTSP (PROTOCOL 10).

With `media.publish_rtsp = true` every captured camera is pushed to
`rtsp://<media.host>:<media.rtsp_port>/cameraN` (ANNOUNCE + RECORD, RTP interleaved over TCP)
as MJPEG (RFC 2435): an MJPG camera's JPEGs go out as the camera sent them, a YUYV camera's
frames are encoded to JPEG first. MJPEG needs no encoder state, so a reconnect can resume at
any frame. PyAV's RTSP muxer does the protocol; it is imported when the first publisher starts.

Each camera's publisher is a thread of its own: it connects, sends frames and, when the server
goes away, reconnects after 1 s, 2 s, 4 s, ... up to 30 s. Frames reach it through a one-frame
slot that the newest frame overwrites, so a slow or absent server never blocks the capture,
the event loop or any other consumer: it only skips frames.

`publish_on = "demand"` attaches to captures that other consumers keep running (a passive
consumer, which does not keep the capture alive); `"always"` is a consumer of every connected
camera itself, so every camera is captured and published all the time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from camera_service.cameras.model import CONNECTED
from camera_service.cameras.streams import StreamUrls
from camera_service.core.events import CameraChanged, CaptureStarted, EventBus, Subscription
from camera_service.media import encoders
from camera_service.media.capture import CaptureError, CaptureManager, Frame, FrameSubscription

if TYPE_CHECKING:
    from camera_service.cameras.model import Camera
    from camera_service.cameras.monitor import CameraMonitor
    from camera_service.config import Config

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 30.0
# Seconds PyAV may wait for the server while connecting or sending before giving up.
IO_TIMEOUT_SECONDS = 5.0
THREAD_JOIN_SECONDS = 2.0
RTP_CLOCK = Fraction(1, 90000)  # RFC 2435 / RFC 3551: video timestamps at 90 kHz

# Publisher states shown by get_streams.
IDLE, CONNECTING, PUBLISHING, RETRYING, STOPPED = (
    "idle",
    "connecting",
    "publishing",
    "retrying",
    "stopped",
)


def retry_delays(first: float | None = None, cap: float = MAX_RETRY_SECONDS) -> Iterator[float]:
    """1, 2, 4, 8, 16, 30, 30, ... seconds: the waits between reconnect attempts."""
    delay = FIRST_RETRY_SECONDS if first is None else first
    while True:
        yield delay
        delay = min(delay * 2, cap)


def jpeg_pixel_format(jpeg: bytes) -> str:
    """`yuvj422p` or `yuvj420p` from the JPEG's frame header: RFC 2435 can carry only these
    two, and the RTP packetizer announces the type the stream's pixel format says."""
    i = 2
    while i + 4 <= len(jpeg):
        if jpeg[i] != 0xFF:
            break
        marker = jpeg[i + 1]
        length = int.from_bytes(jpeg[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1) and i + 11 <= len(jpeg):  # baseline / extended SOF
            sampling = jpeg[i + 11]  # first component (Y): high nibble H, low nibble V
            return "yuvj420p" if sampling & 0x0F == 2 else "yuvj422p"
        if marker == 0xDA:  # start of scan: no frame header before it
            break
        i += 2 + length
    raise encoders.EncodeError("not a baseline JPEG: RFC 2435 cannot carry it")


@dataclass(slots=True)
class PublisherStats:
    state: str = IDLE
    connects: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    last_error: str | None = None
    retry_at: float | None = None  # time.monotonic() of the next attempt while retrying


class CameraPublisher:
    """Pushes one camera's frames to one RTSP URL from a thread of its own."""

    def __init__(self, camera: Camera, url: str, quality: int) -> None:
        self.camera = camera
        self.url = url
        self.quality = quality
        self.stats = PublisherStats()
        self.subscription: FrameSubscription | None = None
        self._slot: Frame | None = None
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name=f"rtsp-{camera.stream_name}", daemon=True
        )

    # ---- on the event loop -------------------------------------------------------------------

    def attach(self, subscription: FrameSubscription) -> None:
        """Take frames from `subscription` (a new one after the capture restarted)."""
        old, self.subscription = self.subscription, subscription
        if old is not None and old is not subscription:
            old.close()
        subscription.on_frame = self.offer
        if not self._thread.is_alive() and not self._stopping:
            self._thread.start()

    def offer(self, frame: Frame) -> None:
        """Hand the newest frame to the thread; an unsent older one is dropped."""
        with self._wake:
            self._slot = frame
            self._wake.notify()

    def stop(self) -> None:
        self._stopping = True
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None
        with self._wake:
            self._wake.notify()

    async def join(self) -> None:
        if self._thread.is_alive():
            await asyncio.get_running_loop().run_in_executor(
                None, self._thread.join, THREAD_JOIN_SECONDS
            )

    # ---- the publisher thread ----------------------------------------------------------------

    def _next_frame(self, timeout: float | None = None) -> Frame | None:
        """The newest frame, waiting for one; None when stopping (or after `timeout`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._wake:
            while self._slot is None and not self._stopping:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._wake.wait(remaining)
            frame, self._slot = self._slot, None
            return None if self._stopping else frame

    def _sleep(self, seconds: float) -> None:
        """Wait `seconds` (frames arriving meanwhile do not cut it short); stop() does."""
        deadline = time.monotonic() + seconds
        with self._wake:
            while not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._wake.wait(remaining)

    def _run(self) -> None:
        delays = retry_delays()
        while not self._stopping:
            frame = self._next_frame()
            if frame is None:
                break
            try:
                self._publish(frame)
            except Exception as exc:  # PyAV raises OSError subclasses and av.FFmpegError
                if self._stopping:
                    break
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if self.stats.state == PUBLISHING:
                    delays = retry_delays()  # it worked for a while: start from 1 s again
                delay = next(delays)
                log.warning(
                    "RTSP publishing of %s to %s failed (%s); retrying in %g s",
                    self.camera.stream_name,
                    self.url,
                    self.stats.last_error,
                    delay,
                )
                self.stats.state = RETRYING
                self.stats.retry_at = time.monotonic() + delay
                self._sleep(delay)
                self.stats.retry_at = None
        self.stats.state = STOPPED

    def _publish(self, first: Frame) -> None:
        """One connection: connect, send frames until stopped; raises when the server fails."""
        import av  # media-only dependency: loaded with the first publisher

        self.stats.state = CONNECTING
        jpeg = self._jpeg(first)
        container = av.open(
            self.url,
            mode="w",
            format="rtsp",
            options={"rtsp_transport": "tcp"},
            timeout=IO_TIMEOUT_SECONDS,
        )
        try:
            stream = container.add_stream("mjpeg", rate=30)
            stream.width, stream.height = first.width, first.height
            stream.pix_fmt = jpeg_pixel_format(jpeg)
            stream.time_base = RTP_CLOCK
            base = first.timestamp
            last_pts = -1
            frame: Frame | None = first
            while frame is not None:
                if frame.width != first.width or frame.height != first.height:
                    raise encoders.EncodeError("the capture changed size; reconnecting")
                pts = max(int((frame.timestamp - base) / RTP_CLOCK), last_pts + 1)
                packet = av.Packet(jpeg)
                packet.stream = stream
                packet.pts = packet.dts = last_pts = pts
                packet.time_base = RTP_CLOCK
                packet.is_keyframe = True
                container.mux(packet)  # the first mux sends ANNOUNCE, SETUP and RECORD
                if self.stats.state != PUBLISHING:
                    self.stats.state = PUBLISHING
                    self.stats.connects += 1
                    self.stats.last_error = None
                    log.info("publishing %s to %s", self.camera.stream_name, self.url)
                self.stats.frames_sent += 1
                self.stats.bytes_sent += len(jpeg)
                frame = self._next_frame()
                if frame is not None:
                    jpeg = self._jpeg(frame)
        finally:
            try:
                container.close()
            except Exception:  # the server is gone already: nothing left to tell it
                pass

    def _jpeg(self, frame: Frame) -> bytes:
        return encoders.jpeg_from_frame(frame, self.quality)


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
            for device in list(self.publishers):
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
