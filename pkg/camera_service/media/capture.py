"""One capture per camera, shared by every consumer (PROTOCOL 5.8).

The first consumer of a camera starts its capture: a thread opens the node, sets the format
chosen by `plan_capture`, maps the buffers and then waits in `poll()` for frames (no busy loop,
no timer). Each frame is copied out of its mmap buffer once, the buffer goes straight back to
the driver, and the same immutable `Frame` reaches every consumer on the event loop: no
per-consumer copies. A consumer only ever holds the newest frame (a slow one skips frames,
nothing queues). The capture stops `capture.idle_stop_seconds` after its last consumer left,
and at once when the camera is unplugged (every consumer then gets a `CaptureError`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from camera_service.cameras.model import CONNECTED
from camera_service.core.events import CameraChanged, CaptureStarted, EventBus, Subscription
from camera_service.devices.errors import DeviceBusy, DeviceError, DeviceGone
from camera_service.devices.v4l2_capture import CaptureDevice

if TYPE_CHECKING:
    from camera_service.cameras.model import Camera
    from camera_service.config import CaptureSettings, Config
    from camera_service.devices.v4l2 import DeviceInfo

log = logging.getLogger(__name__)

# Readiness reported this many times in a row without a frame means the driver's poll() is
# broken; the capture fails instead of spinning.
MAX_EMPTY_WAKEUPS = 1000
THREAD_JOIN_SECONDS = 2.0


class CaptureError(Exception):
    """The camera cannot deliver frames now; the message is the reason for the client."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame, shared read-only by every consumer."""

    data: bytes
    fourcc: str
    width: int
    height: int
    sequence: int  # the driver's counter: gaps are frames dropped before we got them
    timestamp: float  # the driver's capture time (seconds, CLOCK_MONOTONIC on UVC)
    dequeued_at: float  # time.monotonic() when the capture thread took it from the driver
    wall_time: float  # time.time() at the same moment


@dataclass(frozen=True, slots=True)
class CapturePlan:
    """The format a capture asks the driver for."""

    fourcc: str
    width: int
    height: int
    fps: Fraction | None  # None: leave the camera's rate alone


def plan_capture(info: DeviceInfo, settings: CaptureSettings) -> CapturePlan:
    """The first of `capture.formats` the camera offers, at `capture.resolution` (else the
    camera's current size if that format offers it, else its largest) and `capture.fps`
    (else the current rate). Raises CaptureError when no allowed format is offered."""
    offered = {fmt.fourcc: fmt for fmt in info.formats}
    fourcc = next((f for f in settings.formats if f in offered), None)
    if fourcc is None:
        raise CaptureError(
            f"no usable format: the camera offers {', '.join(offered) or 'none'}, "
            f"capture.formats allows {', '.join(settings.formats)}"
        )
    sizes = [(s.width, s.height) for s in offered[fourcc].sizes]
    if settings.resolution:
        width_text, height_text = settings.resolution.split("x")
        size = (int(width_text), int(height_text))
    elif (info.current_width, info.current_height) in sizes or not sizes:
        size = (info.current_width or 0, info.current_height or 0)
    else:
        size = max(sizes, key=lambda wh: wh[0] * wh[1])
    fps: Fraction | None = None
    if settings.fps:
        fps = Fraction(settings.fps).limit_denominator(1000)
    elif info.current_fps is None:
        rates = [r for s in offered[fourcc].sizes if (s.width, s.height) == size for r in s.fps]
        fps = max(rates) if rates else None
    return CapturePlan(fourcc, size[0], size[1], fps)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class FrameSubscription:
    """A consumer of one camera's frames: always the newest one, never a queue."""

    def __init__(self, capture: CameraCapture, passive: bool = False) -> None:
        self.capture = capture
        # A passive consumer takes frames while others keep the capture running, but never
        # keeps it running itself (the RTSP publisher with `publish_on = "demand"`).
        self.passive = passive
        self._frame: Frame | None = None
        self._taken: Frame | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._error: CaptureError | None = None
        self.closed = False
        # For consumers that need every frame (recorder, publisher): called on the loop with
        # each frame as it arrives, and with the CaptureError when the capture ends. They must
        # return at once (hand the frame to their own worker), never block the loop.
        self.on_frame: Callable[[Frame], None] | None = None
        self.on_error: Callable[[CaptureError], None] | None = None

    def latest(self) -> Frame | None:
        """The newest frame of the capture, whoever it was delivered to first."""
        return self.capture.latest

    async def next_frame(self, timeout: float) -> Frame:
        """The first frame newer than the one this consumer got last; CaptureError when the
        capture ended or no frame came within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        while True:
            if self._error is not None:
                raise self._error
            frame = self._frame
            if frame is not None and frame is not self._taken:
                self._taken = frame
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CaptureError(f"no frame from the camera within {timeout:g} s")
            # A bare future and one timer per wait: every viewer waits once per frame, and
            # asyncio.wait_for would add a task per wait.
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(remaining, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None

    def _deliver(self, frame: Frame) -> None:
        self._frame = frame
        _wake(self._waiter)
        if self.on_frame is not None:
            self.on_frame(frame)

    def _fail(self, error: CaptureError) -> None:
        self._error = error
        _wake(self._waiter)
        if self.on_error is not None:
            self.on_error(error)

    def close(self) -> None:
        """Stop consuming; the capture stops after the idle delay once nobody consumes."""
        if not self.closed:
            self.closed = True
            self.capture._remove(self)


class CameraCapture:
    """The capture thread of one camera and the consumers of its frames."""

    def __init__(
        self,
        camera: Camera,
        plan: CapturePlan,
        buffers: int,
        loop: asyncio.AbstractEventLoop,
        on_idle: object,
    ) -> None:
        self.camera = camera
        self.plan = plan
        self.buffers = buffers
        self.loop = loop
        self._on_idle = on_idle
        self.subscribers: set[FrameSubscription] = set()
        self.watchers: set[FrameSubscription] = set()
        self.latest: Frame | None = None
        self.format: str = plan.fourcc
        self.width, self.height = plan.width, plan.height
        # Until the driver answers S_PARM, or when it is left alone: the camera's own rate.
        self.fps: Fraction | None = plan.fps or (camera.info.current_fps if camera.info else None)
        self.frames = 0
        self.error: CaptureError | None = None
        self.started_at = time.monotonic()
        self._ready: asyncio.Future[None] = loop.create_future()
        self._stopping = False
        # Wakes the thread out of poll() to stop. Written and closed under the lock, so a
        # late stop() can never write into a reused fd number.
        self._wake_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._wake_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name=f"capture-{camera.stream_name}", daemon=True
        )

    @property
    def ended(self) -> bool:
        return self._stopping or self.error is not None

    @property
    def running(self) -> bool:
        return self._ready.done() and not self.ended

    def start(self) -> None:
        self._thread.start()

    async def wait_started(self) -> None:
        """Returns once frames flow; raises CaptureError when the capture could not start."""
        await asyncio.shield(self._ready)

    def add_subscriber(self, passive: bool = False) -> FrameSubscription:
        subscription = FrameSubscription(self, passive)
        if self.error is not None:
            subscription._fail(self.error)
        (self.watchers if passive else self.subscribers).add(subscription)
        return subscription

    def _remove(self, subscription: FrameSubscription) -> None:
        if subscription.passive:
            self.watchers.discard(subscription)
            return
        self.subscribers.discard(subscription)
        if not self.subscribers:
            self._on_idle(self)  # type: ignore[operator]

    def stop(self) -> None:
        """Ask the thread to end; it closes the device itself."""
        if self._stopping:
            return
        self._stopping = True
        with self._wake_lock:
            if self._wake_fd >= 0:
                os.eventfd_write(self._wake_fd, 1)

    async def join(self) -> None:
        if self._thread.is_alive():
            await asyncio.get_running_loop().run_in_executor(
                None, self._thread.join, THREAD_JOIN_SECONDS
            )

    def fail(self, reason: str) -> None:
        """End every consumer with `reason` (on the loop) and stop."""
        self._failed(CaptureError(reason))
        self.stop()

    # ---- on the loop, called from the thread -------------------------------------------------

    def _started(self, fourcc: str, width: int, height: int, fps: Fraction | None) -> None:
        self.format, self.width, self.height = fourcc, width, height
        if fps is not None:
            self.fps = fps
        if not self._ready.done():
            self._ready.set_result(None)

    def _publish(self, frame: Frame) -> None:
        self.latest = frame
        self.frames += 1
        for subscription in self.subscribers:
            subscription._deliver(frame)
        for subscription in tuple(self.watchers):
            subscription._deliver(frame)

    def _failed(self, error: CaptureError) -> None:
        if self.error is not None:
            return
        self.error = error
        if not self._ready.done():
            self._ready.set_exception(error)
            self._ready.exception()  # retrieved here: a failed start nobody awaits is normal
        for subscription in (*self.subscribers, *self.watchers):
            subscription._fail(error)

    # ---- the capture thread ------------------------------------------------------------------

    def _run(self) -> None:
        call = self.loop.call_soon_threadsafe
        device: CaptureDevice | None = None
        try:
            device = CaptureDevice(self.camera.device)
            plan = self.plan
            fmt = device.set_format(plan.fourcc, plan.width, plan.height)
            fps = device.set_frame_rate(plan.fps) if plan.fps else None
            device.start(self.buffers)
            call(self._started, fmt.fourcc, fmt.width, fmt.height, fps)
            self._stream(device, fmt.fourcc, fmt.width, fmt.height)
        except DeviceError as exc:
            if not self._stopping:
                log.warning("capture of %s ended: %s", self.camera.device, exc)
            call(self._failed, CaptureError(_reason(exc)))
        except Exception as exc:  # a bug must end this capture, not leave consumers waiting
            log.exception("capture of %s failed", self.camera.device)
            call(self._failed, CaptureError(f"capture failed: {type(exc).__name__}"))
        finally:
            if device is not None:
                try:
                    device.close()
                except OSError:
                    pass
            with self._wake_lock:
                os.close(self._wake_fd)
                self._wake_fd = -1

    def _stream(self, device: CaptureDevice, fourcc: str, width: int, height: int) -> None:
        poller = select.poll()
        poller.register(device.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        poller.register(self._wake_fd, select.POLLIN)
        call = self.loop.call_soon_threadsafe
        empty = 0
        while not self._stopping:
            poller.poll()
            if self._stopping:
                return
            slot = device.dequeue()  # raises DeviceGone after an unplug
            if slot is None:
                empty += 1
                if empty >= MAX_EMPTY_WAKEUPS:
                    raise DeviceError(0, device.path, "poll", "readiness without frames")
                continue
            empty = 0
            data = device.read(slot)
            device.requeue(slot.index)
            if slot.error or not data:
                continue  # a corrupted frame: the next one is a frame interval away
            call(
                self._publish,
                Frame(
                    data,
                    fourcc,
                    width,
                    height,
                    slot.sequence,
                    slot.timestamp,
                    time.monotonic(),
                    time.time(),
                ),
            )


def _reason(exc: DeviceError) -> str:
    if isinstance(exc, DeviceBusy):
        return "the camera is in use by another program"
    if isinstance(exc, DeviceGone):
        return "the camera was unplugged"
    return f"the camera cannot stream: {exc.operation} failed ({exc.strerror})"


class CaptureManager:
    """Owns the captures: starts one on a camera's first consumer, shares it, stops it when
    idle or unplugged."""

    def __init__(self, bus: EventBus, settings: CaptureSettings) -> None:
        self.bus = bus
        self.settings = settings
        self.captures: dict[str, CameraCapture] = {}
        self._idle_timers: dict[str, asyncio.TimerHandle] = {}
        self._subscription: Subscription[CameraChanged] | None = None

    async def start(self) -> None:
        self._subscription = self.bus.subscribe(CameraChanged, self._on_camera_changed)

    async def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        for timer in self._idle_timers.values():
            timer.cancel()
        self._idle_timers.clear()
        captures = list(self.captures.values())
        self.captures.clear()
        for capture in captures:
            capture.fail("the service is shutting down")
        for capture in captures:
            await capture.join()

    def apply(self, config: Config) -> None:
        """Format, size, rate and timeouts apply to captures started from now on."""
        self.settings = config.capture

    async def subscribe(self, camera: Camera) -> FrameSubscription:
        """A consumer of `camera`'s frames, the capture started if needed; CaptureError when
        the camera cannot stream (then nothing is left running for this consumer)."""
        if camera.status != CONNECTED or camera.info is None:
            raise CaptureError(f"the camera is {camera.status}: {camera.error or 'not usable'}")
        capture = self.captures.get(camera.device)
        if capture is None or capture.ended:
            plan = plan_capture(camera.info, self.settings)
            capture = CameraCapture(
                camera, plan, self.settings.buffers, asyncio.get_running_loop(), self._on_idle
            )
            self.captures[camera.device] = capture
            capture._ready.add_done_callback(lambda ready: self._announce(capture, ready))
            capture.start()
            log.info(
                "capture of %s starting: %s %dx%d",
                camera.device,
                plan.fourcc,
                plan.width,
                plan.height,
            )
        timer = self._idle_timers.pop(camera.device, None)
        if timer is not None:
            timer.cancel()
        subscription = capture.add_subscriber()
        try:
            await capture.wait_started()
        except BaseException:  # CaptureError, or the caller went away while it started
            subscription.close()
            raise
        return subscription

    def watch(self, camera: Camera) -> FrameSubscription | None:
        """A passive consumer of `camera`'s capture if it is running, else None: it gets the
        frames but does not keep the capture alive, and ends (CaptureError) when it stops."""
        capture = self.captures.get(camera.device)
        if capture is None or not capture.running:
            return None
        return capture.add_subscriber(passive=True)

    def running(self) -> list[CameraCapture]:
        return [c for c in self.captures.values() if c.running]

    def _announce(self, capture: CameraCapture, ready: asyncio.Future[None]) -> None:
        if not ready.cancelled() and ready.exception() is None and not capture.ended:
            self.bus.publish(CaptureStarted(capture.camera))

    def _on_idle(self, capture: CameraCapture) -> None:
        device = capture.camera.device
        if self.captures.get(device) is not capture:
            return
        if capture.ended:
            self._forget(capture)
            return
        delay = self.settings.idle_stop_seconds
        loop = asyncio.get_running_loop()
        self._idle_timers[device] = loop.call_later(delay, self._stop_idle, capture)

    def _stop_idle(self, capture: CameraCapture) -> None:
        self._idle_timers.pop(capture.camera.device, None)
        if not capture.subscribers:
            log.info("capture of %s stopped: no consumer left", capture.camera.device)
            capture.fail("the capture stopped: no consumer left")  # ends passive watchers
            self._forget(capture)

    def _forget(self, capture: CameraCapture) -> None:
        if self.captures.get(capture.camera.device) is capture:
            del self.captures[capture.camera.device]

    def _on_camera_changed(self, event: CameraChanged) -> None:
        capture = self.captures.get(event.camera.device)
        if capture is not None and event.camera.status != CONNECTED:
            capture.fail("the camera was unplugged")
            self._forget(capture)
