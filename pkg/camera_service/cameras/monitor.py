"""Camera discovery: an initial scan of `videoN` nodes, then hot-plug from inotify, no polling.

The monitor lives on the asyncio loop. The kernel wakes it through the inotify fd
(`loop.add_reader`); nothing runs while nothing changes (`wakeups` counts every callback and
timer so tests can check that). Probing a node means blocking ioctls, so it runs in a small
thread pool with a deadline: a device that hangs becomes ERROR and the loop keeps serving.

Rules that shape the code:
  * One change gives one event. Events read in one batch are merged per name before probing,
    and events arriving while a probe of that name runs only mark it for a re-probe, whose
    result is announced only if it differs from what is registered.
  * At most one probe per node name is in flight. A thread stuck in a driver (or in a FUSE
    request) cannot be cancelled, so a node whose probe is still running is never probed again
    until that probe returns; with a bounded pool, hung devices cannot starve the others
    beyond the number of hung nodes.
  * A node that appears before udev has fixed its permissions (EACCES, or ENOENT/ENODEV while
    the node is being set up) is retried on IN_ATTRIB and after short bounded delays, then
    becomes ERROR.
  * IN_Q_OVERFLOW means events were lost: the directory is listed again and diffed.
  * If the device directory itself goes away, every camera is DISCONNECTED and the nearest
    existing ancestor is watched until the directory comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import itertools
import logging
import os
import queue
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from typing import Any

from camera_service.cameras.model import CONNECTED, DISCONNECTED, ERROR, Camera
from camera_service.core.events import (
    CONNECTED_EVENT,
    DISCONNECTED_EVENT,
    STATUS_CHANGED_EVENT,
    CameraChanged,
    EventBus,
    EventStream,
)
from camera_service.devices import v4l2
from camera_service.devices.errors import (
    DeviceError,
    DeviceGone,
    DevicePermission,
    DeviceTimeout,
)
from camera_service.devices.inotify import (
    IN_ATTRIB,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_ISDIR,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
    InotifyEvent,
    InotifyWatcher,
)

log = logging.getLogger(__name__)

# Delays before re-probing a node that exists but cannot be opened yet (udev still at work).
RETRY_DELAYS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)

_NODE_NAME = re.compile(r"video(0|[1-9][0-9]*)\Z")
_DIR_MASK = (
    IN_CREATE
    | IN_DELETE
    | IN_ATTRIB
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
_ANCESTOR_MASK = IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
_DIR_GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED

CameraCallback = Callable[[CameraChanged], Any]


class ProbePool(Executor):
    """Daemon worker threads for probes, at most `workers` of them.

    concurrent.futures.ThreadPoolExecutor joins its threads when the interpreter exits; a
    thread stuck in a driver's ioctl would then keep the whole service from exiting. Daemon
    threads are simply abandoned at exit. A thread is added whenever a job arrives and no
    thread is idle, so threads stuck in hung devices do not stop other cameras from being
    probed (up to the cap).
    """

    def __init__(self, workers: int, name: str = "camera-probe") -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._workers = workers
        self._name = name
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._idle = 0  # threads waiting for a job
        self._queued = 0  # jobs no thread has taken yet
        self._mu = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        with self._mu:
            if self._closed:
                raise RuntimeError("probe pool is shut down")
            self._jobs.put((future, fn, args, kwargs))
            self._queued += 1
            if self._idle < self._queued and len(self._threads) < self._workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self) -> None:
        while True:
            with self._mu:
                self._idle += 1
            job = self._jobs.get()
            with self._mu:
                self._idle -= 1
                if job is not None:
                    self._queued -= 1
            if job is None:
                return
            future, fn, args, kwargs = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, as concurrent.futures does
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._mu:
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job[0].cancel()
        for _ in threads:
            self._jobs.put(None)
        if wait:
            for thread in threads:
                thread.join()


class _Node:
    """Book-keeping for one videoN name that exists in the device directory."""

    __slots__ = (
        "again",
        "again_full",
        "detected_at",
        "gen",
        "is_camera",
        "name",
        "number",
        "path",
        "retries",
        "retry_timer",
        "settled",
        "silent",
    )

    def __init__(self, name: str, number: int, path: str, gen: int, silent: bool) -> None:
        self.name = name
        self.number = number
        self.path = path
        self.gen = gen  # a new node under the same name gets a new generation
        self.silent = silent  # present at start-up: its first result is not announced
        self.settled = False  # has had a definite result (camera, not a camera, or ERROR)
        self.is_camera: bool | None = None
        self.again = False  # a change arrived while a probe of this name was running
        self.again_full = False  # ... and it was more than a permission change
        self.retries = 0
        self.retry_timer: asyncio.TimerHandle | None = None
        self.detected_at: float | None = None


class _Probe:
    """One probe running (or queued) in the pool for a node name."""

    __slots__ = ("future", "gen", "started", "timed_out", "timer")

    def __init__(self, future: asyncio.Future, gen: int, started: list) -> None:
        self.future = future
        self.gen = gen
        self.started = started  # [monotonic time the worker picked it up] or [None]
        self.timer: asyncio.TimerHandle | None = None
        self.timed_out = False


class CameraMonitor:
    """The camera registry, kept up to date from the device directory."""

    def __init__(
        self,
        device_dir: str = "/dev",
        device_range: Iterable[int] = (),
        probe_timeout: float = 2.0,
        *,
        max_workers: int = 16,
        probe: Callable[[str], v4l2.DeviceInfo] = v4l2.probe,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        bus: EventBus | None = None,
    ) -> None:
        # Changes are published as CameraChanged on `bus` (a private one when none is given).
        self.bus = bus if bus is not None else EventBus()
        self.device_dir = os.path.normpath(os.path.abspath(device_dir))
        self._range = frozenset(device_range)
        self._probe_timeout = float(probe_timeout)
        self._max_workers = max_workers
        self._probe_fn = probe
        self._retry_delays = tuple(retry_delays)

        self._state = "stopped"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: InotifyWatcher | None = None
        self._executor: ProbePool | None = None
        self._dir_wd: int | None = None
        self._ancestor_wd: int | None = None
        self._ancestor_next = ""

        self._nodes: dict[str, _Node] = {}
        self._probes: dict[str, _Probe] = {}
        self._cameras: dict[int, Camera] = {}
        self._gens = itertools.count(1)
        self._initial_pending: set[str] = set()
        self._snapshot: tuple[Camera, ...] | None = ()

        self._streams: weakref.WeakSet[EventStream[CameraChanged]] = weakref.WeakSet()

        self.version = 0
        self.wakeups = 0
        self.overflows = 0
        self.first_scan_done = False
        self.ready = asyncio.Event()

    @classmethod
    def from_config(cls, cfg: Any, **kwargs: Any) -> CameraMonitor:
        cam = cfg.camera
        return cls(cam.device_dir, cam.device_range, cam.probe_timeout, **kwargs)

    def apply(self, config: Any) -> None:
        """Live keys: `camera.probe_timeout` and `camera.device_range`."""
        self.probe_timeout = config.camera.probe_timeout
        self.set_device_range(config.camera.device_range)

    # ---- public view -------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """One of "running", "stopped" or "error" (inotify failed; `start()` again to retry)."""
        return self._state

    @property
    def device_range(self) -> frozenset[int]:
        return self._range

    @property
    def probe_timeout(self) -> float:
        return self._probe_timeout

    @probe_timeout.setter
    def probe_timeout(self, value: float) -> None:
        # Live setting: applies to probes started from now on.
        self._probe_timeout = float(value)

    def set_device_range(self, device_range: Iterable[int]) -> None:
        """Live setting: nodes leaving the range are DISCONNECTED, new ones are probed."""
        new = frozenset(device_range)
        if new == self._range:
            return
        self._range = new
        if self._state == "running" and self._dir_wd is not None:
            self._rescan(initial=False)

    def snapshot(self) -> tuple[Camera, ...]:
        """Every camera (CONNECTED or ERROR), sorted by device number."""
        if self._snapshot is None:
            self._snapshot = tuple(self._cameras[n] for n in sorted(self._cameras))
        return self._snapshot

    def get(self, device: str) -> Camera | None:
        """Look a camera up by node path (f"{device_dir}/videoN") or stream name ("cameraN")."""
        number = self.device_number(device)
        return None if number is None else self._cameras.get(number)

    def device_number(self, device: str) -> int | None:
        if device.startswith("camera"):
            digits = device[6:]
        else:
            head, sep, name = device.rpartition("/")
            if not sep or os.path.normpath(head or "/") != self.device_dir:
                return None
            m = _NODE_NAME.match(name)
            digits = m.group(1) if m else ""
        # ASCII digits only: str.isdigit() also accepts "²" or Arabic-Indic digits. No node
        # number has more than 9 digits (and int() refuses thousands of them).
        if (
            not (digits.isascii() and digits.isdigit())
            or len(digits) > 9
            or (len(digits) > 1 and digits[0] == "0")
        ):
            return None
        return int(digits)

    def device_path(self, number: int) -> str:
        return f"{self.device_dir}/video{number}"

    def subscribe(self, callback: CameraCallback) -> Callable[[], None]:
        """Call `callback(CameraChanged)` on the loop for every change; returns unsubscribe."""
        return self.bus.subscribe(CameraChanged, callback).close

    def events(self) -> EventStream[CameraChanged]:
        """`async for event in monitor.events()`: subscribed at once, ends when the monitor
        stops."""
        stream = self.bus.stream(CameraChanged)
        self._streams.add(stream)
        return stream

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.ready.wait(), timeout)

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Watch the directory and probe what is there; `ready` is set once all have a result."""
        if self._state == "running":
            return
        if self._watcher is not None:  # restarting after an error: release the old fd first
            await self.stop()
        self._loop = asyncio.get_running_loop()
        self._reset_registry()
        try:
            self._watcher = InotifyWatcher()
        except OSError:
            self._state = "error"
            raise
        self._executor = ProbePool(self._max_workers)
        self._loop.add_reader(self._watcher.fileno(), self._on_readable)
        self._state = "running"
        try:
            self._attach(initial=True)
        except OSError:
            log.exception("cannot watch %s", self.device_dir)
            await self.stop()
            self._state = "error"
            raise
        self._check_first_scan()

    async def stop(self) -> None:
        """Release the inotify fd, the reader, the timers and the pool (hung threads are left
        to finish on their own: they cannot be interrupted)."""
        if self._watcher is not None:
            if self._loop is not None and not self._watcher.closed:
                self._loop.remove_reader(self._watcher.fileno())
            self._watcher.close()
            self._watcher = None
        for node in self._nodes.values():
            if node.retry_timer is not None:
                node.retry_timer.cancel()
                node.retry_timer = None
        for run in self._probes.values():
            if run.timer is not None:
                run.timer.cancel()
                run.timer = None
        self._probes.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._dir_wd = self._ancestor_wd = None
        was = self._state
        self._state = "stopped"
        if was != "stopped":
            for stream in list(self._streams):
                stream.end()

    def _reset_registry(self) -> None:
        self._nodes.clear()
        self._probes.clear()
        if self._cameras:
            self._cameras.clear()
            self._changed()
        self._initial_pending.clear()
        self.first_scan_done = False
        self.ready.clear()

    # ---- watching the directory --------------------------------------------------------------

    def _attach(self, initial: bool) -> None:
        """Watch the device directory, or the nearest ancestor until the directory exists."""
        assert self._watcher is not None
        while True:
            self._drop_ancestor_watch()
            try:
                self._dir_wd = self._watcher.add_watch(self.device_dir, _DIR_MASK)
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                    raise
            else:
                log.info("watching %s", self.device_dir)
                self._rescan(initial)
                return
            path = self.device_dir
            while True:
                parent = os.path.dirname(path)
                try:
                    self._ancestor_wd = self._watcher.add_watch(parent, _ANCESTOR_MASK)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.ENOENT, errno.ENOTDIR) or parent == path:
                        raise
                    path = parent
            self._ancestor_next = os.path.basename(path)
            log.warning("%s does not exist; waiting for it in %s", self.device_dir, parent)
            # The missing component may have been created before this watch existed.
            if not os.path.isdir(path):
                return

    def _drop_ancestor_watch(self) -> None:
        if self._ancestor_wd is not None and self._watcher is not None:
            with contextlib.suppress(OSError):
                self._watcher.remove_watch(self._ancestor_wd)
        self._ancestor_wd = None

    def _detach(self) -> None:
        """The device directory went away: every node is gone with it."""
        if self._dir_wd is not None and self._watcher is not None:
            with contextlib.suppress(OSError):
                self._watcher.remove_watch(self._dir_wd)  # still needed after IN_MOVE_SELF
        self._dir_wd = None
        log.warning("%s disappeared", self.device_dir)
        for name in sorted(self._nodes, key=lambda n: self._nodes[n].number):
            self._remove_node(name)

    def _wanted(self, name: str) -> int | None:
        m = _NODE_NAME.match(name)
        if m is None:
            return None
        number = int(m.group(1))
        return number if not self._range or number in self._range else None

    def _rescan(self, initial: bool) -> None:
        """List the directory and bring the registry in line with it."""
        try:
            names = os.listdir(self.device_dir)
        except OSError as exc:
            # Gone between the watch and the listing: IN_DELETE_SELF is on its way.
            log.warning("cannot list %s: %s", self.device_dir, exc)
            names = []
        present = {n for n in names if self._wanted(n) is not None}
        for name in [n for n in self._nodes if n not in present]:
            self._remove_node(name)
        if initial:
            self._initial_pending = set(present)
        for name in sorted(present, key=lambda n: int(n[5:])):
            node = self._nodes.get(name) or self._new_node(name, silent=initial)
            self._request_probe(node, attrib_only=False)

    # ---- inotify -----------------------------------------------------------------------------

    def _on_readable(self) -> None:
        self.wakeups += 1
        if self._watcher is None:
            return
        try:
            events = self._watcher.read_events()
        except OSError:
            log.exception("reading inotify events failed")
            self._state = "error"
            # A broken fd stays readable: without this the loop would spin on it.
            if self._loop is not None:
                self._loop.remove_reader(self._watcher.fileno())
            return
        try:
            self._handle_events(events)
        except OSError:
            # Typically ENOSPC from inotify_add_watch (max_user_watches) while re-attaching.
            log.exception("cannot follow %s any more", self.device_dir)
            self._state = "error"

    def _handle_events(self, events: list[InotifyEvent]) -> None:
        """Apply one batch of events. Probes start only after the whole batch is merged."""
        to_probe: dict[str, bool] = {}  # name -> needs a full probe (not just a chmod)
        overflow = dir_gone = reattach = False
        for ev in events:
            if ev.mask & IN_Q_OVERFLOW:
                overflow = True
            elif self._dir_wd is not None and ev.wd == self._dir_wd:
                if ev.mask & _DIR_GONE:
                    dir_gone = True
                    break
                if ev.mask & IN_ISDIR or self._wanted(ev.name) is None:
                    continue
                name = ev.name
                if ev.mask & (IN_DELETE | IN_MOVED_FROM):
                    self._remove_node(name)
                    to_probe.pop(name, None)
                elif ev.mask & (IN_CREATE | IN_MOVED_TO):
                    self._new_node(name, silent=False)
                    to_probe[name] = True
                elif ev.mask & IN_ATTRIB:
                    if name not in self._nodes:  # its IN_CREATE was lost or predates the watch
                        self._new_node(name, silent=False)
                        to_probe[name] = True
                    else:
                        to_probe.setdefault(name, False)
            elif self._ancestor_wd is not None and ev.wd == self._ancestor_wd:
                appeared = ev.mask & (IN_CREATE | IN_MOVED_TO) and ev.name == self._ancestor_next
                if appeared or ev.mask & _DIR_GONE:
                    reattach = True
            # Anything else is the IN_IGNORED of a watch we removed ourselves.
        if dir_gone:
            self._detach()
            reattach = True
        if reattach and self._dir_wd is None:
            self._attach(initial=False)
            return
        if overflow:
            self.overflows += 1
            log.warning("inotify queue overflowed; rescanning %s", self.device_dir)
            if self._dir_wd is not None:
                self._rescan(initial=False)
            else:  # the directory's re-creation may be among the lost events
                self._attach(initial=False)
            return
        for name, full in to_probe.items():
            node = self._nodes.get(name)
            if node is not None:
                self._request_probe(node, attrib_only=not full)

    # ---- nodes and probes --------------------------------------------------------------------

    def _new_node(self, name: str, silent: bool) -> _Node:
        if name in self._nodes:  # replaced without us seeing the removal
            self._remove_node(name)
        number = int(name[5:])
        node = _Node(name, number, self.device_path(number), next(self._gens), silent)
        self._nodes[name] = node
        return node

    def _remove_node(self, name: str) -> None:
        node = self._nodes.pop(name, None)
        if node is None:
            return
        if node.retry_timer is not None:
            node.retry_timer.cancel()
            node.retry_timer = None
        camera = self._cameras.pop(node.number, None)
        if camera is not None:
            self._changed()
            gone = camera.with_status(DISCONNECTED)
            log.info("camera %s disconnected", gone.device)
            self._emit(CameraChanged(DISCONNECTED_EVENT, gone))
        self._initial_pending.discard(name)
        self._check_first_scan()

    def _request_probe(self, node: _Node, attrib_only: bool) -> None:
        if attrib_only and node.settled and node.retry_timer is None:
            camera = self._cameras.get(node.number)
            if node.is_camera is False or (camera is not None and camera.status == CONNECTED):
                return  # a permission change on a node that works tells us nothing new
        if node.retry_timer is not None:
            node.retry_timer.cancel()  # this change is the better moment to try again
            node.retry_timer = None
        run = self._probes.get(node.name)
        if run is not None:
            node.again = True
            node.again_full = node.again_full or not attrib_only
            if run.timed_out and run.gen != node.gen and not node.settled:
                # A new node under a name whose last probe is still stuck in the driver: it
                # cannot be asked anything until that returns, so it is ERROR until then.
                self._settle_error(node, DeviceTimeout(node.path, "probe", self._probe_timeout))
            return
        self._start_probe(node)

    def _start_probe(self, node: _Node) -> None:
        if self._executor is None or self._loop is None:
            return
        node.again = node.again_full = False
        started: list[float | None] = [None]
        probe_fn = self._probe_fn
        path = node.path

        def job() -> v4l2.DeviceInfo:
            started[0] = time.monotonic()
            return probe_fn(path)

        future = self._loop.run_in_executor(self._executor, job)
        run = _Probe(future, node.gen, started)
        run.timer = self._loop.call_later(self._probe_timeout, self._on_deadline, node.name, run)
        self._probes[node.name] = run
        future.add_done_callback(functools.partial(self._on_probe_done, node.name, run))

    def _on_deadline(self, name: str, run: _Probe) -> None:
        self.wakeups += 1
        run.timer = None
        if self._probes.get(name) is not run or self._loop is None:
            return
        started = run.started[0]
        if started is None:
            # Still queued behind other probes: the device has not been asked anything yet.
            run.timer = self._loop.call_later(self._probe_timeout, self._on_deadline, name, run)
            return
        remaining = started + self._probe_timeout - time.monotonic()
        if remaining > 0.001:
            run.timer = self._loop.call_later(remaining, self._on_deadline, name, run)
            return
        run.timed_out = True
        node = self._nodes.get(name)
        if node is not None and (node.gen == run.gen or node.again):
            log.warning("probe of %s timed out after %g s", node.path, self._probe_timeout)
            self._settle_error(node, DeviceTimeout(node.path, "probe", self._probe_timeout))

    def _on_probe_done(self, name: str, run: _Probe, future: asyncio.Future) -> None:
        self.wakeups += 1
        if run.timer is not None:
            run.timer.cancel()
            run.timer = None
        if self._probes.get(name) is run:
            del self._probes[name]
        if future.cancelled():
            return
        exc = future.exception()
        if self._state != "running":
            return
        node = self._nodes.get(name)
        if node is None:
            return
        if node.gen != run.gen or run.timed_out:
            # Stale: the node was replaced meanwhile, or this probe already counted as failed.
            if node.again:
                self._start_probe(node)
            return
        if node.again and node.again_full:
            self._start_probe(node)  # something changed mid-probe: only a fresh answer counts
            return
        attrib_pending = node.again
        node.again = False
        if exc is None:
            self._settle_info(node, future.result())
        elif isinstance(exc, (DevicePermission, DeviceGone)) and node.retries < len(
            self._retry_delays
        ):
            delay = self._retry_delays[node.retries]
            node.retries += 1
            if attrib_pending:
                self._start_probe(node)  # the permission change may be the fix
            else:
                assert self._loop is not None
                node.retry_timer = self._loop.call_later(delay, self._on_retry, name, node.gen)
            return
        else:
            if not isinstance(exc, DeviceError):
                log.error("probe of %s failed unexpectedly", node.path, exc_info=exc)
            self._settle_error(node, exc)
        if attrib_pending and not self._is_working(node):
            self._start_probe(node)

    def _on_retry(self, name: str, gen: int) -> None:
        self.wakeups += 1
        node = self._nodes.get(name)
        if node is None or node.gen != gen:
            return
        node.retry_timer = None
        if name in self._probes:
            node.again = node.again_full = True
        else:
            self._start_probe(node)

    def _is_working(self, node: _Node) -> bool:
        camera = self._cameras.get(node.number)
        return node.is_camera is False or (camera is not None and camera.status == CONNECTED)

    # ---- results -----------------------------------------------------------------------------

    def _settle_info(self, node: _Node, info: v4l2.DeviceInfo) -> None:
        node.retries = 0
        if not info.is_capture:
            # Metadata / output node of some device: never listed.
            node.is_camera = False
            self._mark_settled(node)
            old = self._cameras.pop(node.number, None)
            if old is not None:
                self._changed()
                self._emit(CameraChanged(DISCONNECTED_EVENT, old.with_status(DISCONNECTED)))
            return
        node.is_camera = True
        if node.detected_at is None:
            node.detected_at = time.monotonic()
        self._publish(node, Camera.from_device_info(node.path, node.number, info, node.detected_at))

    def _settle_error(self, node: _Node, exc: BaseException) -> None:
        node.retries = 0
        node.is_camera = True
        if node.detected_at is None:
            node.detected_at = time.monotonic()
        reason = str(exc) or type(exc).__name__
        self._publish(node, Camera.failed(node.path, node.number, reason, node.detected_at))

    def _publish(self, node: _Node, camera: Camera) -> None:
        announce = not (node.silent and not node.settled)
        self._mark_settled(node)
        old = self._cameras.get(node.number)
        if old == camera:
            return
        self._cameras[node.number] = camera
        self._changed()
        if not announce:
            return
        if old is None:
            kind = CONNECTED_EVENT if camera.status == CONNECTED else STATUS_CHANGED_EVENT
        elif old.status != camera.status:
            kind = STATUS_CHANGED_EVENT
        elif camera.status == CONNECTED and _identity(old) != _identity(camera):
            # A different device under the same name (seen after a lost unplug/plug pair).
            self._emit(CameraChanged(DISCONNECTED_EVENT, old.with_status(DISCONNECTED)))
            kind = CONNECTED_EVENT
        else:
            return  # same status, refreshed details: the registry has them, nothing to announce
        if camera.status == ERROR:
            log.warning("camera %s: %s", camera.device, camera.error)
        else:
            log.info("camera %s %s: %s", camera.device, kind.lower(), camera.name)
        self._emit(CameraChanged(kind, camera))

    def _mark_settled(self, node: _Node) -> None:
        node.settled = True
        if node.name in self._initial_pending:
            self._initial_pending.discard(node.name)
            self._check_first_scan()

    def _check_first_scan(self) -> None:
        if not self.first_scan_done and self._state == "running" and not self._initial_pending:
            self.first_scan_done = True
            self.ready.set()

    def _changed(self) -> None:
        self.version += 1
        self._snapshot = None

    def _emit(self, event: CameraChanged) -> None:
        self.bus.publish(event)


def _identity(camera: Camera) -> tuple[str, str, str]:
    info = camera.device_info
    return (info.get("driver", ""), info.get("card", ""), info.get("bus_info", ""))


__all__ = [
    "CONNECTED_EVENT",
    "DISCONNECTED_EVENT",
    "RETRY_DELAYS",
    "STATUS_CHANGED_EVENT",
    "CameraChanged",
    "CameraMonitor",
]
