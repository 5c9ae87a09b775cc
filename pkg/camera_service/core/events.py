"""Typed domain events and the bus that carries them from their owner to every subscriber.

An owner publishes an event once (the camera monitor publishes `CameraChanged`); subscribers
(the WebSocket notifier, later the MQTT bridge and the recorder) receive it on the event loop,
after the code that published it has returned. That delay is what keeps a notification behind
the response of the request that caused it (PROTOCOL section 1, Ordering): the response is
written in the same callback that published, the notification in a later one.

Each subscription has its own bounded queue, so a subscriber that is slow (an async handler
that waits) or failing (raises) delays or breaks nobody else: exceptions are logged, and a
queue that overflows drops its oldest events with a warning instead of growing without bound.
Synchronous handlers run in loop callbacks and must not block; slow work belongs in an async
handler, which runs in a task of its own.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

if TYPE_CHECKING:
    from camera_service.cameras.model import Camera

log = logging.getLogger(__name__)

# Events a subscriber may fall behind by before the oldest are dropped.
DEFAULT_MAX_PENDING = 10_000

CONNECTED_EVENT = "CONNECTED"
DISCONNECTED_EVENT = "DISCONNECTED"
STATUS_CHANGED_EVENT = "STATUS_CHANGED"


@dataclass(frozen=True, slots=True)
class CameraChanged:
    """A camera appeared (`CONNECTED`), went away (`DISCONNECTED`) or changed status."""

    kind: str  # CONNECTED_EVENT | DISCONNECTED_EVENT | STATUS_CHANGED_EVENT
    camera: Camera


@dataclass(frozen=True, slots=True)
class SnapshotTaken:
    """A snapshot file was written completely (`path` is its final place)."""

    device: str
    filename: str
    path: str
    file_size: int
    timestamp: float  # epoch seconds of the frame's capture


@dataclass(frozen=True, slots=True)
class FileDeleted:
    """A recording or snapshot file was deleted through the service."""

    kind: str  # "recording" | "snapshot"
    filename: str


@dataclass(frozen=True, slots=True)
class RecordingChanged:
    """A recording started, opened a new segment, stopped or failed (PROTOCOL 6)."""

    device: str
    status: str  # "STARTED" | "SEGMENT" | "STOPPED" | "FAILED"
    session_id: str
    filename: str  # STARTED: first segment; SEGMENT: the new one; else the last one
    duration: float | None  # STARTED: requested seconds or None; else seconds recorded
    reason: str | None = None  # FAILED only


@dataclass(frozen=True, slots=True)
class CaptureStarted:
    """A camera's capture delivers frames (its first consumer attached, or it restarted)."""

    camera: Camera


E = TypeVar("E")
Handler = Callable[[Any], Any]


class Subscription(Generic[E]):
    """One subscriber's queue; `close()` ends the subscription."""

    def __init__(
        self, bus: EventBus, event_type: type[E], handler: Handler, max_pending: int
    ) -> None:
        self.bus = bus
        self.event_type = event_type
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self.name = getattr(handler, "__qualname__", repr(handler))
        self.dropped = 0
        self._pending: deque[E] = deque()
        self._max_pending = max_pending
        self._scheduled = False
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self.closed = False

    def _offer(self, event: E, loop: asyncio.AbstractEventLoop) -> None:
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "event subscriber %s is behind: dropped %d oldest events",
                    self.name,
                    self.dropped,
                )
        self._pending.append(event)
        if self.is_async:
            if self._task is None:
                self._wakeup = asyncio.Event()
                self._task = loop.create_task(self._run_async())
            assert self._wakeup is not None
            self._wakeup.set()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        pending = self._pending
        while pending and not self.closed:
            event = pending.popleft()
            try:
                self.handler(event)
            except Exception:
                log.exception("event subscriber %s failed on %r", self.name, event)

    async def _run_async(self) -> None:
        assert self._wakeup is not None
        while not self.closed:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending and not self.closed:
                event = self._pending.popleft()
                try:
                    await self.handler(event)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("event subscriber %s failed on %r", self.name, event)

    def close(self) -> None:
        """Stop delivering; events still queued are dropped."""
        if self.closed:
            return
        self.closed = True
        self._pending.clear()
        self.bus._remove(self)
        if self._task is not None:
            self._task.cancel()
            self._task = None


class EventStream(Generic[E]):
    """`async for event in bus.stream(T)`: every event of type T from creation until closed."""

    def __init__(self, bus: EventBus, event_type: type[E]) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._subscription = bus.subscribe(event_type, self._queue.put_nowait)
        self._ended = False

    def end(self) -> None:
        """Let the iteration finish after the events already published."""
        # Events published before this call are delivered by a callback scheduled earlier;
        # the end marker is queued behind them.
        asyncio.get_running_loop().call_soon(self._finish)

    def _finish(self) -> None:
        self._subscription.close()
        self._queue.put_nowait(_END)

    def close(self) -> None:
        self._subscription.close()
        self._ended = True

    def __aiter__(self) -> AsyncIterator[E]:
        return self

    async def __anext__(self) -> E:
        if self._ended and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _END:
            self._ended = True
            raise StopAsyncIteration
        return item  # type: ignore[no-any-return]

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


_END = object()


class EventBus:
    """Delivers each published event to the subscribers of its exact type."""

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._max_pending = max_pending
        self._subscriptions: dict[type, list[Subscription[Any]]] = {}

    def subscribe(
        self,
        event_type: type[E],
        handler: Callable[[E], None] | Callable[[E], Awaitable[None]],
    ) -> Subscription[E]:
        """Call `handler(event)` for every later event of `event_type`, in publish order.

        A coroutine function runs in a task of its own, one event at a time; a plain function
        runs in a loop callback soon after the publish and must return quickly.
        """
        subscription = Subscription(self, event_type, handler, self._max_pending)
        self._subscriptions.setdefault(event_type, []).append(subscription)
        return subscription

    def stream(self, event_type: type[E]) -> EventStream[E]:
        """An async iterator over the events of `event_type` published from now on."""
        return EventStream(self, event_type)

    def publish(self, event: object) -> None:
        """Queue `event` for every subscriber of its type; never blocks, never raises."""
        subscriptions = self._subscriptions.get(type(event))
        if not subscriptions:
            return
        loop = asyncio.get_running_loop()
        for subscription in tuple(subscriptions):
            subscription._offer(event, loop)

    def subscriber_count(self, event_type: type) -> int:
        return len(self._subscriptions.get(event_type, ()))

    def _remove(self, subscription: Subscription[Any]) -> None:
        subscriptions = self._subscriptions.get(subscription.event_type)
        if subscriptions and subscription in subscriptions:
            subscriptions.remove(subscription)
