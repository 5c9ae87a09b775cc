"""CameraMonitor against the FUSE fake cameras: real inotify events, real ioctls, real threads."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections import Counter

import pytest

from camera_service.cameras.model import CONNECTED, DISCONNECTED, ERROR
from camera_service.cameras.monitor import CameraChanged, CameraMonitor
from camera_service.devices import v4l2
from camera_service.devices.inotify import IN_Q_OVERFLOW, InotifyEvent
from camera_service.testing import fakecams


class CountingProbe:
    """The real probe, counting calls per node name (called from the pool's threads)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._mu = threading.Lock()

    def __call__(self, path: str) -> v4l2.DeviceInfo:
        with self._mu:
            self.calls[os.path.basename(path)] += 1
        return v4l2.probe(path)


@pytest.fixture
async def start_monitor(fake_cameras):
    monitors: list[CameraMonitor] = []

    async def start(device_dir: str | None = None, **kwargs) -> CameraMonitor:
        kwargs.setdefault("probe_timeout", 1.0)
        monitor = CameraMonitor(device_dir or fake_cameras.dev_dir, **kwargs)
        await monitor.start()
        monitors.append(monitor)
        return monitor

    yield start
    for monitor in monitors:
        await monitor.stop()


async def take(stream, count: int, timeout: float = 5.0) -> list[CameraChanged]:
    events: list[CameraChanged] = []
    try:
        async with asyncio.timeout(timeout):
            while len(events) < count:
                events.append(await anext(stream))
    except TimeoutError:
        pytest.fail(f"expected {count} events within {timeout} s, got {_brief(events)}")
    return events


async def quiet(stream, period: float = 0.3) -> list[CameraChanged]:
    """Whatever else arrives within `period` (expected: nothing)."""
    extra: list[CameraChanged] = []
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(period):
            while True:
                extra.append(await anext(stream))
    return extra


def _brief(events: list[CameraChanged]) -> list[tuple[str, str, str]]:
    return [(e.kind, os.path.basename(e.camera.device), e.camera.status) for e in events]


def names(monitor: CameraMonitor) -> list[str]:
    return [os.path.basename(c.device) for c in monitor.snapshot()]


# ---- initial scan -----------------------------------------------------------------------------


@pytest.mark.fuse
async def test_initial_scan_lists_capture_nodes_and_errors_without_events(
    fake_cameras, start_monitor
):
    fake_cameras.add("video0", fakecams.uvc_camera())
    fake_cameras.add("video1", fakecams.metadata_node())
    fake_cameras.add("video2", fakecams.querycap_eio_camera())
    fake_cameras.add("video10", fakecams.fractional_camera())
    fake_cameras.add("vbi0", fakecams.uvc_camera())  # not a videoN name
    seen: list[CameraChanged] = []
    monitor = CameraMonitor(fake_cameras.dev_dir, probe_timeout=1.0)
    monitor.subscribe(seen.append)
    assert (monitor.state, monitor.first_scan_done) == ("stopped", False)
    try:
        await monitor.start()
        await monitor.wait_ready(5)
        assert monitor.state == "running" and monitor.first_scan_done
        assert names(monitor) == ["video0", "video2", "video10"]  # by number, metadata skipped
        cam0, cam2, cam10 = monitor.snapshot()
        assert (cam0.status, cam0.name, cam0.resolution, cam0.fps) == (
            CONNECTED,
            "Fake USB Camera",
            "640x480",
            30,
        )
        assert cam0.device == os.path.join(fake_cameras.dev_dir, "video0")
        assert (cam2.status, cam2.name, cam2.resolution, cam2.fps, cam2.formats) == (
            ERROR,
            "Camera 2",
            "",
            0,
            (),
        )
        assert "VIDIOC_QUERYCAP" in cam2.error and "errno 5" in cam2.error
        assert (cam10.fps, cam10.frame_rates, cam10.fps_options) == (7.5, (15, 7.5), (15, 7.5))
        assert monitor.get(cam0.device) is cam0
        assert monitor.get("camera10") is cam10
        assert monitor.get("/dev/video0") is None  # a different directory
        assert monitor.get("camera1") is None and monitor.get("camera01") is None
        assert monitor.get(os.path.join(fake_cameras.dev_dir, "video1")) is None
        await asyncio.sleep(0.2)
        assert seen == []  # cameras present at start-up are not announced
    finally:
        await monitor.stop()
    assert monitor.state == "stopped"


@pytest.mark.fuse
async def test_ready_at_once_for_an_empty_directory(start_monitor):
    monitor = await start_monitor()
    assert monitor.ready.is_set() and monitor.snapshot() == ()


# ---- hot-plug -----------------------------------------------------------------------------------


@pytest.mark.fuse
async def test_hotplug_add_remove_readd(fake_cameras, start_monitor):
    probe = CountingProbe()
    monitor = await start_monitor(probe=probe)
    stream = monitor.events()
    v0 = monitor.version

    fake_cameras.add("video3", fakecams.uvc_camera())
    (ev,) = await take(stream, 1)
    assert ev.kind == "CONNECTED"
    assert (ev.camera.device, ev.camera.status, ev.camera.name) == (
        fake_cameras.path("video3"),
        CONNECTED,
        "Fake USB Camera",
    )
    assert monitor.snapshot() == (ev.camera,) and monitor.version == v0 + 1
    assert await quiet(stream) == []

    fake_cameras.remove("video3")
    (ev,) = await take(stream, 1)
    assert ev.kind == "DISCONNECTED"
    assert (ev.camera.status, ev.camera.name, ev.camera.resolution, ev.camera.fps) == (
        DISCONNECTED,
        "Fake USB Camera",
        "640x480",
        30,
    )
    assert monitor.snapshot() == () and monitor.version == v0 + 2

    fake_cameras.add("video3", fakecams.fractional_camera())
    (ev,) = await take(stream, 1)
    assert (ev.kind, ev.camera.name, ev.camera.fps) == ("CONNECTED", "Fake Slow Camera", 7.5)
    assert await quiet(stream) == []
    assert probe.calls == {"video3": 2}
    assert monitor.version == v0 + 3


@pytest.mark.fuse
async def test_udev_style_event_pairs_give_one_probe_and_one_event(fake_cameras, start_monitor):
    probe = CountingProbe()
    monitor = await start_monitor(probe=probe)
    stream = monitor.events()
    fake_cameras.add("video0", fakecams.uvc_camera())  # IN_CREATE + IN_ATTRIB
    fake_cameras.chmod("video0", 0o660)  # IN_ATTRIB
    os.chown(fake_cameras.path("video0"), 0, 44)  # IN_ATTRIB ("video" group)
    (ev,) = await take(stream, 1)
    assert ev.kind == "CONNECTED"
    # Same again, with the loop reading in between each step.
    fake_cameras.register("video1", fakecams.uvc_camera(card="Second"))
    os.close(os.open(fake_cameras.path("video1"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    await asyncio.sleep(0)
    fake_cameras.chmod("video1", 0o660)
    await asyncio.sleep(0.05)
    fake_cameras.chmod("video1", 0o666)
    (ev,) = await take(stream, 1)
    assert (ev.kind, ev.camera.name) == ("CONNECTED", "Second")
    assert await quiet(stream) == []
    assert probe.calls == {"video0": 1, "video1": 1}


@pytest.mark.fuse
async def test_burst_within_one_read_gives_one_event_per_surviving_camera(
    fake_cameras, start_monitor
):
    probe = CountingProbe()
    monitor = await start_monitor(probe=probe)
    stream = monitor.events()
    # 20 changes made while the loop cannot run: the monitor sees them as one batch.
    for n in range(10):
        fake_cameras.add(f"video{n}", fakecams.uvc_camera(card=f"Cam {n}"))
    for n in range(0, 10, 2):
        fake_cameras.remove(f"video{n}")
    for n in range(10, 15):
        fake_cameras.add(f"video{n}", fakecams.uvc_camera(card=f"Cam {n}"))
    survivors = [1, 3, 5, 7, 9, 10, 11, 12, 13, 14]
    events = await take(stream, len(survivors))
    assert sorted(_brief(events), key=lambda e: int(e[1][5:])) == [
        ("CONNECTED", f"video{n}", CONNECTED) for n in survivors
    ]
    assert await quiet(stream) == []
    assert names(monitor) == [f"video{n}" for n in survivors]
    assert probe.calls == {f"video{n}": 1 for n in survivors}

    for n in survivors:
        fake_cameras.remove(f"video{n}")
    events = await take(stream, len(survivors))
    assert sorted(_brief(events), key=lambda e: int(e[1][5:])) == [
        ("DISCONNECTED", f"video{n}", DISCONNECTED) for n in survivors
    ]
    assert await quiet(stream) == [] and monitor.snapshot() == ()


@pytest.mark.fuse
async def test_burst_racing_the_monitor_ends_consistent(fake_cameras, start_monitor):
    monitor = await start_monitor()
    stream = monitor.events()
    specs = {f"video{n}": fakecams.uvc_camera(card=f"Cam {n}") for n in range(12)}

    def burst() -> None:  # 20 changes from another thread while the loop runs
        for n in range(12):
            fake_cameras.add(f"video{n}", specs[f"video{n}"])
        for n in range(8):
            fake_cameras.remove(f"video{n}")

    await asyncio.to_thread(burst)
    expected = ["video8", "video9", "video10", "video11"]
    deadline = time.monotonic() + 5
    while names(monitor) != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert names(monitor) == expected
    events: list[CameraChanged] = []
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            while True:
                events.append(await anext(stream))
    per_name: dict[str, list[str]] = {}
    for ev in events:
        per_name.setdefault(os.path.basename(ev.camera.device), []).append(ev.kind)
    for name, kinds in per_name.items():
        # Never two events in a row of the same kind: each is a real change.
        assert all(a != b for a, b in itertools.pairwise(kinds)), (name, kinds)
        assert kinds[0] == "CONNECTED"
        assert kinds[-1] == ("CONNECTED" if name in expected else "DISCONNECTED"), (name, kinds)
    for name in expected:
        assert per_name[name] == ["CONNECTED"]


# ---- permissions, faults, timeouts ----------------------------------------------------------------


@pytest.mark.fuse
async def test_permission_fixed_after_appearing(fake_cameras, start_monitor):
    probe = CountingProbe()
    monitor = await start_monitor(probe=probe)
    stream = monitor.events()
    fake_cameras.add_unreadable("video0", fakecams.uvc_camera())  # IN_CREATE, open -> EACCES
    await asyncio.sleep(0.08)  # inside the retry window
    assert monitor.snapshot() == ()  # not listed while udev is still at work
    fake_cameras.chmod("video0", 0o660)  # IN_ATTRIB
    (ev,) = await take(stream, 1, timeout=2)
    assert (ev.kind, ev.camera.status) == ("CONNECTED", CONNECTED)
    assert await quiet(stream, 0.8) == []  # no leftover retry fires afterwards
    assert 2 <= probe.calls["video0"] <= 3


@pytest.mark.fuse
async def test_permission_never_fixed_becomes_error_then_recovers(fake_cameras, start_monitor):
    probe = CountingProbe()
    monitor = await start_monitor(probe=probe)
    stream = monitor.events()
    t0 = time.monotonic()
    fake_cameras.add_unreadable("video0", fakecams.uvc_camera())
    (ev,) = await take(stream, 1, timeout=3)
    elapsed = time.monotonic() - t0
    assert (ev.kind, ev.camera.status, ev.camera.name) == ("STATUS_CHANGED", ERROR, "Camera 0")
    assert "Permission denied" in ev.camera.error
    assert elapsed >= sum((0.05, 0.1, 0.2, 0.4)) - 0.01
    assert probe.calls["video0"] == 5  # first try + 4 bounded retries
    assert monitor.snapshot() == (ev.camera,)

    fake_cameras.chmod("video0", 0o666)
    (ev,) = await take(stream, 1)
    assert (ev.kind, ev.camera.status, ev.camera.name) == (
        "STATUS_CHANGED",
        CONNECTED,
        "Fake USB Camera",
    )
    assert await quiet(stream) == []


@pytest.mark.fuse
async def test_vanishing_and_broken_cameras_are_error(fake_cameras, start_monitor):
    monitor = await start_monitor()
    stream = monitor.events()
    fake_cameras.add("video4", fakecams.vanishing_camera())
    fake_cameras.add("video5", fakecams.querycap_eio_camera())
    fake_cameras.add("video6", fakecams.busy_camera())
    events = {os.path.basename(e.camera.device): e for e in await take(stream, 3, timeout=3)}
    assert {n: (e.kind, e.camera.status) for n, e in events.items()} == {
        "video4": ("STATUS_CHANGED", ERROR),
        "video5": ("STATUS_CHANGED", ERROR),
        "video6": ("STATUS_CHANGED", ERROR),
    }
    assert "errno 19" in events["video4"].camera.error  # ENODEV after the retries
    assert "errno 5" in events["video5"].camera.error
    assert "errno 16" in events["video6"].camera.error
    fake_cameras.remove("video5")
    (ev,) = await take(stream, 1)
    assert (ev.kind, ev.camera.device, ev.camera.status) == (
        "DISCONNECTED",
        fake_cameras.path("video5"),
        DISCONNECTED,
    )


@pytest.mark.fuse
async def test_hung_probe_turns_error_and_the_loop_keeps_serving(fake_cameras, start_monitor):
    probe = CountingProbe()
    monitor = await start_monitor(probe_timeout=0.3, probe=probe)
    stream = monitor.events()
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    stop_ticks = False

    def tick(expected: float) -> None:
        lateness.append(loop.time() - expected)
        if not stop_ticks:
            loop.call_later(0.01, tick, loop.time() + 0.01)

    loop.call_later(0.01, tick, loop.time() + 0.01)
    t0 = time.monotonic()
    # The daemon holds QUERYCAP for 3 s (bounded; released at the end of the test).
    fake_cameras.add("video0", fakecams.hanging_camera(seconds=3.0))
    fake_cameras.add("video1", fakecams.uvc_camera())
    first, second = await take(stream, 2, timeout=2)
    assert (first.kind, os.path.basename(first.camera.device)) == ("CONNECTED", "video1")
    assert (second.kind, second.camera.status, os.path.basename(second.camera.device)) == (
        "STATUS_CHANGED",
        ERROR,
        "video0",
    )
    elapsed = time.monotonic() - t0
    assert 0.3 <= elapsed < 1.0, elapsed
    assert "no answer within 0.3 s" in second.camera.error

    # While the probe is stuck, another change must not start a second probe of that node.
    fake_cameras.chmod("video0", 0o660)
    await asyncio.sleep(0.2)
    assert probe.calls["video0"] == 1
    stop_ticks = True
    assert len(lateness) > 20 and max(lateness) < 0.1, max(lateness)

    # Once the device answers again, the pending change is probed and the camera recovers.
    fake_cameras.set_faults("video0", {})
    fake_cameras.release_hangs()
    (ev,) = await take(stream, 1)
    assert (ev.kind, ev.camera.status, ev.camera.name) == (
        "STATUS_CHANGED",
        CONNECTED,
        "Fake Hanging Camera",
    )
    assert probe.calls["video0"] == 2


@pytest.mark.fuse
async def test_replugged_while_the_old_probe_is_stuck(fake_cameras, start_monitor):
    probe = CountingProbe()
    monitor = await start_monitor(probe_timeout=0.2, probe=probe)
    stream = monitor.events()
    fake_cameras.add("video0", fakecams.hanging_camera(seconds=3.0))
    (ev,) = await take(stream, 1)
    assert ev.camera.status == ERROR
    fake_cameras.remove("video0")
    (ev,) = await take(stream, 1)
    assert (ev.kind, ev.camera.status) == ("DISCONNECTED", DISCONNECTED)
    fake_cameras.add("video0", fakecams.uvc_camera(card="Replacement"))
    (ev,) = await take(stream, 1)
    assert (ev.kind, ev.camera.status) == ("STATUS_CHANGED", ERROR)  # path still stuck
    assert probe.calls["video0"] == 1
    fake_cameras.release_hangs()
    (ev,) = await take(stream, 1)
    assert (ev.kind, ev.camera.status, ev.camera.name) == (
        "STATUS_CHANGED",
        CONNECTED,
        "Replacement",
    )
    assert probe.calls["video0"] == 2


# ---- idle, overflow, directory lifecycle -------------------------------------------------------


@pytest.mark.fuse
async def test_no_wakeups_while_nothing_changes(fake_cameras, start_monitor):
    for n in range(3):
        fake_cameras.add(f"video{n}", fakecams.uvc_camera(card=f"Cam {n}"))
    monitor = await start_monitor()
    await monitor.wait_ready(5)
    await asyncio.sleep(0.1)
    before = monitor.wakeups
    assert before >= 3  # the probes' completions were counted
    await asyncio.sleep(1.0)
    assert monitor.wakeups == before
    fake_cameras.remove("video1")
    await asyncio.sleep(0.1)
    assert monitor.wakeups == before + 1  # exactly one reader callback for the unplug


QUEUE_KNOB = "/proc/sys/fs/inotify/max_queued_events"


def _sysctl(path: str, value: str | None = None) -> str:
    with open(path, "r+") as f:
        old = f.read().strip()
        if value is not None:
            f.seek(0)
            f.write(value)
    return old


@pytest.mark.fuse
async def test_real_queue_overflow_rescans(fake_cameras, start_monitor):
    try:
        original = _sysctl(QUEUE_KNOB, "8")
    except OSError as exc:
        pytest.skip(f"cannot lower {QUEUE_KNOB}: {exc}")
    try:
        # The limit is copied into the inotify instance when it is created; the global value
        # is lowered only for the few microseconds start() takes.
        monitor = await start_monitor()
    finally:
        _sysctl(QUEUE_KNOB, original)
    stream = monitor.events()
    for n in range(10):  # 20 events into a queue of 8, while the loop is not reading
        fake_cameras.add(f"video{n}", fakecams.uvc_camera(card=f"Cam {n}"))
    events = await take(stream, 10)
    assert monitor.overflows == 1
    assert sorted(_brief(events), key=lambda e: int(e[1][5:])) == [
        ("CONNECTED", f"video{n}", CONNECTED) for n in range(10)
    ]
    assert await quiet(stream) == []


@pytest.mark.fuse
async def test_lost_events_are_recovered_by_the_overflow_rescan(fake_cameras, start_monitor):
    fake_cameras.add("video0", fakecams.uvc_camera(card="Stays"))
    fake_cameras.add("video1", fakecams.uvc_camera(card="Leaves"))
    fake_cameras.add("video2", fakecams.uvc_camera(card="Replaced"))
    monitor = await start_monitor()
    await monitor.wait_ready(5)
    stream = monitor.events()
    # Lose the events on purpose: drain the fd behind the monitor's back.
    fake_cameras.remove("video1")
    fake_cameras.remove("video2")
    fake_cameras.add("video2", fakecams.mplane_camera())
    fake_cameras.add("video3", fakecams.uvc_camera(card="Arrives"))
    assert monitor._watcher is not None
    assert len(monitor._watcher.read_events()) == 6
    monitor._handle_events([InotifyEvent(-1, IN_Q_OVERFLOW, 0, "")])
    events = await take(stream, 4)
    assert sorted((e.kind, e.camera.name, e.camera.status) for e in events) == [
        ("CONNECTED", "Arrives", CONNECTED),
        ("CONNECTED", "Fake ISP Camera", CONNECTED),
        ("DISCONNECTED", "Leaves", DISCONNECTED),
        ("DISCONNECTED", "Replaced", DISCONNECTED),
    ]
    assert [c.name for c in monitor.snapshot()] == ["Stays", "Fake ISP Camera", "Arrives"]
    assert await quiet(stream) == []


@pytest.mark.fuse
async def test_device_dir_deleted_and_recreated(fake_cameras, start_monitor):
    sub = fake_cameras.mkdir("sub")
    fake_cameras.add("sub/video0", fakecams.uvc_camera())
    fake_cameras.add("sub/video1", fakecams.fractional_camera())
    monitor = await start_monitor(sub)
    await monitor.wait_ready(5)
    assert names(monitor) == ["video0", "video1"]
    assert monitor.get(os.path.join(sub, "video0")).status == CONNECTED
    stream = monitor.events()

    fake_cameras.remove("sub/video0")
    fake_cameras.remove("sub/video1")
    os.rmdir(sub)
    events = await take(stream, 2)
    assert sorted(_brief(events)) == [
        ("DISCONNECTED", "video0", DISCONNECTED),
        ("DISCONNECTED", "video1", DISCONNECTED),
    ]
    await asyncio.sleep(0.1)
    assert monitor.state == "running" and monitor.snapshot() == ()

    fake_cameras.mkdir("sub")
    fake_cameras.add("sub/video2", fakecams.uvc_camera(card="Back"))
    (ev,) = await take(stream, 1)
    assert (ev.kind, ev.camera.name, ev.camera.device) == (
        "CONNECTED",
        "Back",
        os.path.join(sub, "video2"),
    )
    assert await quiet(stream) == []


@pytest.mark.fuse
async def test_device_dir_moved_away_and_back(fake_cameras, start_monitor):
    sub = fake_cameras.mkdir("sub")
    fake_cameras.add("sub/video0", fakecams.uvc_camera())
    monitor = await start_monitor(sub)
    await monitor.wait_ready(5)
    stream = monitor.events()
    aside = os.path.join(fake_cameras.dev_dir, "aside")
    os.rename(sub, aside)  # IN_MOVE_SELF: the cameras left with the directory
    (ev,) = await take(stream, 1)
    assert (ev.kind, ev.camera.device) == ("DISCONNECTED", os.path.join(sub, "video0"))
    fake_cameras.add("aside/video5", fakecams.uvc_camera())  # not watched any more
    assert await quiet(stream, 0.2) == []
    os.rename(aside, sub)  # comes back with two cameras in it
    events = await take(stream, 2)
    assert sorted(_brief(events)) == [
        ("CONNECTED", "video0", CONNECTED),
        ("CONNECTED", "video5", CONNECTED),
    ]


@pytest.mark.fuse
async def test_directory_created_after_start(fake_cameras, start_monitor):
    later = os.path.join(fake_cameras.dev_dir, "a", "b")
    monitor = await start_monitor(later)
    assert monitor.ready.is_set() and monitor.state == "running" and monitor.snapshot() == ()
    stream = monitor.events()
    fake_cameras.mkdir("a")
    fake_cameras.mkdir("a/b")
    fake_cameras.add("a/b/video7", fakecams.uvc_camera())
    (ev,) = await take(stream, 1)
    assert (ev.kind, ev.camera.device) == ("CONNECTED", os.path.join(later, "video7"))
    assert monitor.wakeups <= 4


@pytest.mark.fuse
async def test_device_range_filters_and_can_change_live(fake_cameras, start_monitor):
    for n in range(3):
        fake_cameras.add(f"video{n}", fakecams.uvc_camera(card=f"Cam {n}"))
    monitor = await start_monitor(device_range=(0, 2))
    await monitor.wait_ready(5)
    assert names(monitor) == ["video0", "video2"]
    stream = monitor.events()
    fake_cameras.add("video3", fakecams.uvc_camera())
    assert await quiet(stream, 0.2) == []
    monitor.set_device_range([1, 3])
    events = await take(stream, 4)
    assert sorted(_brief(events)) == [
        ("CONNECTED", "video1", CONNECTED),
        ("CONNECTED", "video3", CONNECTED),
        ("DISCONNECTED", "video0", DISCONNECTED),
        ("DISCONNECTED", "video2", DISCONNECTED),
    ]
    assert names(monitor) == ["video1", "video3"]


@pytest.mark.fuse
async def test_32_cameras(fake_cameras, start_monitor):
    for name, spec in fakecams.many_cameras(32).items():
        fake_cameras.add(name, spec)
    monitor = await start_monitor()
    await monitor.wait_ready(10)
    assert names(monitor) == [f"video{n}" for n in range(32)]
    assert {c.status for c in monitor.snapshot()} == {CONNECTED}
    stream = monitor.events()
    for name, spec in fakecams.many_cameras(32, first=32).items():
        fake_cameras.add(name, spec)
    events = await take(stream, 32, timeout=10)
    assert sorted(int(e.camera.device.rsplit("video", 1)[1]) for e in events) == list(range(32, 64))
    assert len(monitor.snapshot()) == 64


# ---- API surface ----------------------------------------------------------------------------------


@pytest.mark.fuse
async def test_stop_releases_the_fd_and_ends_streams(fake_cameras):
    def fds() -> set[str]:
        return set(os.listdir("/proc/self/fd"))

    fake_cameras.add("video0", fakecams.uvc_camera())
    before = fds()
    monitor = CameraMonitor(fake_cameras.dev_dir)
    await monitor.start()
    await monitor.wait_ready(5)
    stream = monitor.events()
    assert len(fds() - before) == 1  # the inotify fd (no camera is held open)
    await monitor.stop()
    assert fds() == before
    assert monitor.state == "stopped"
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    await monitor.stop()  # idempotent


@pytest.mark.fuse
async def test_subscribers_and_streams_are_independent(fake_cameras, start_monitor):
    monitor = await start_monitor()
    got: list[str] = []

    def broken(event: CameraChanged) -> None:
        raise RuntimeError("subscriber bug")

    monitor.subscribe(broken)
    unsubscribe = monitor.subscribe(lambda e: got.append(e.kind))
    async with monitor.events() as stream:
        fake_cameras.add("video0", fakecams.uvc_camera())
        (ev,) = await take(stream, 1)
    assert ev.kind == "CONNECTED" and got == ["CONNECTED"]
    unsubscribe()
    fake_cameras.remove("video0")
    await asyncio.sleep(0.2)
    assert got == ["CONNECTED"]


@pytest.mark.fuse
async def test_probe_timeout_is_live(fake_cameras, start_monitor):
    monitor = await start_monitor(probe_timeout=5.0)
    monitor.probe_timeout = 0.2
    stream = monitor.events()
    fake_cameras.add("video0", fakecams.hanging_camera(seconds=2.0))
    (ev,) = await take(stream, 1, timeout=1.0)
    assert ev.camera.status == ERROR and "0.2 s" in ev.camera.error


# ---- monitor logic with an injected probe (plain directory, real inotify, no FUSE) ------------


def _fake_info(
    path: str, card: str = "Cam", caps: int = 0x04200001, width: int = 640
) -> v4l2.DeviceInfo:
    from fractions import Fraction

    fmt = v4l2.Format("YUYV", "YUYV 4:2:2", (v4l2.FrameSize(width, 480, (Fraction(30),)),))
    return v4l2.DeviceInfo(
        path,
        "fakedrv",
        card,
        "bus-1",
        0x060100,
        caps | 0x80000000,
        caps,
        formats=(fmt,) if caps & 1 else (),
        current_width=width if caps & 1 else None,
        current_height=480 if caps & 1 else None,
        current_fourcc="YUYV" if caps & 1 else None,
        current_fps=Fraction(30) if caps & 1 else None,
    )


class ScriptedProbe:
    """Answers per node name from `answers` (DeviceInfo factory or exception); a name listed in
    `gates` blocks until its event is set (bounded, so a failing test cannot hang)."""

    def __init__(self) -> None:
        self.answers: dict[str, object] = {}
        self.gates: dict[str, threading.Event] = {}
        self.calls: Counter[str] = Counter()
        self._mu = threading.Lock()

    def __call__(self, path: str) -> v4l2.DeviceInfo:
        name = os.path.basename(path)
        with self._mu:
            self.calls[name] += 1
            gate = self.gates.get(name)
            answer = self.answers.get(name, "Cam")
        if gate is not None:
            gate.wait(5)
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer(path)
        return _fake_info(path, card=str(answer))


@pytest.fixture
async def plain_monitor(tmp_path):
    made: list[CameraMonitor] = []

    async def start(probe: ScriptedProbe, **kwargs) -> CameraMonitor:
        kwargs.setdefault("probe_timeout", 1.0)
        monitor = CameraMonitor(str(tmp_path), probe=probe, **kwargs)
        await monitor.start()
        await monitor.wait_ready(5)
        made.append(monitor)
        return monitor

    yield start
    for monitor in made:
        await monitor.stop()


def _touch(directory, name: str) -> None:
    (directory / name).touch()


async def test_queued_probes_are_not_timed_out_while_the_pool_is_stuck(tmp_path, plain_monitor):
    probe = ScriptedProbe()
    probe.gates["video0"] = threading.Event()
    monitor = await plain_monitor(probe, max_workers=1, probe_timeout=0.2)
    stream = monitor.events()
    _touch(tmp_path, "video0")  # takes the only worker and hangs
    await asyncio.sleep(0.01)
    _touch(tmp_path, "video1")  # queued behind it
    (ev,) = await take(stream, 1)
    assert (ev.kind, os.path.basename(ev.camera.device), ev.camera.status) == (
        "STATUS_CHANGED",
        "video0",
        ERROR,
    )
    await asyncio.sleep(0.25)  # video1's deadline passes while it is still queued
    assert monitor.get("camera1") is None
    probe.gates["video0"].set()
    (ev,) = await take(stream, 1)
    assert (ev.kind, os.path.basename(ev.camera.device), ev.camera.status) == (
        "CONNECTED",
        "video1",
        CONNECTED,
    )
    assert monitor.get("camera0").status == ERROR  # the late answer does not count
    assert await quiet(stream) == []
    # Probe threads never keep the process alive at exit, even when stuck in a driver.
    probe.gates["video2"] = threading.Event()
    _touch(tmp_path, "video2")
    await asyncio.sleep(0.05)
    await monitor.stop()
    workers = [t for t in threading.enumerate() if t.name.startswith("camera-probe")]
    assert workers and all(t.daemon for t in workers)
    probe.gates["video2"].set()


async def test_unexpected_probe_failure_is_error(tmp_path, plain_monitor):
    probe = ScriptedProbe()
    probe.answers["video3"] = RuntimeError("driver returned garbage")
    monitor = await plain_monitor(probe)
    stream = monitor.events()
    _touch(tmp_path, "video3")
    (ev,) = await take(stream, 1)
    assert (ev.camera.status, ev.camera.error) == (ERROR, "driver returned garbage")


async def test_rescan_reconciles_changed_nodes(tmp_path, plain_monitor):
    probe = ScriptedProbe()
    for n in range(3):
        _touch(tmp_path, f"video{n}")
    monitor = await plain_monitor(probe)
    assert [c.name for c in monitor.snapshot()] == ["Cam", "Cam", "Cam"]
    stream = monitor.events()
    version = monitor.version
    probe.answers["video0"] = lambda p: _fake_info(p, caps=0x04A00000)  # now a metadata node
    probe.answers["video1"] = "Other"  # a different device behind the same name
    probe.answers["video2"] = lambda p: _fake_info(p, width=1280)  # same device, new format
    monitor._handle_events([InotifyEvent(-1, IN_Q_OVERFLOW, 0, "")])
    events = await take(stream, 3)
    # The three probes run in parallel: cameras may report in any order, but each camera's
    # own events keep theirs (the sort is stable).
    events.sort(key=lambda ev: ev.camera.number)
    assert _brief(events) == [
        ("DISCONNECTED", "video0", DISCONNECTED),
        ("DISCONNECTED", "video1", DISCONNECTED),
        ("CONNECTED", "video1", CONNECTED),
    ]
    assert events[2].camera.name == "Other"
    assert await quiet(stream) == []
    assert [(c.number, c.resolution) for c in monitor.snapshot()] == [
        (1, "640x480"),
        (2, "1280x480"),
    ]
    assert monitor.version == version + 3  # video2's refresh changed the registry silently


async def test_change_during_a_probe_is_probed_again(tmp_path, plain_monitor):
    probe = ScriptedProbe()
    probe.gates["video0"] = threading.Event()
    monitor = await plain_monitor(probe)
    stream = monitor.events()
    _touch(tmp_path, "video0")
    await asyncio.sleep(0.05)
    probe.answers["video0"] = "Newer"
    monitor._handle_events([InotifyEvent(-1, IN_Q_OVERFLOW, 0, "")])  # rescan mid-probe
    probe.gates["video0"].set()
    (ev,) = await take(stream, 1)
    assert (ev.kind, ev.camera.name) == ("CONNECTED", "Newer")
    assert probe.calls["video0"] == 2
    assert await quiet(stream) == []


async def test_attrib_for_an_unknown_node_probes_it(tmp_path, plain_monitor):
    probe = ScriptedProbe()
    monitor = await plain_monitor(probe)
    stream = monitor.events()
    (tmp_path / "video4").touch()
    monitor._watcher.read_events()  # lose its IN_CREATE
    os.chmod(tmp_path / "video4", 0o600)  # only IN_ATTRIB is seen
    (ev,) = await take(stream, 1)
    assert (ev.kind, os.path.basename(ev.camera.device)) == ("CONNECTED", "video4")


async def test_restart_rebuilds_the_registry_silently(tmp_path, plain_monitor):
    probe = ScriptedProbe()
    _touch(tmp_path, "video0")
    monitor = await plain_monitor(probe)
    seen: list[CameraChanged] = []
    monitor.subscribe(seen.append)
    await monitor.stop()
    _touch(tmp_path, "video1")
    await monitor.start()
    await monitor.wait_ready(5)
    assert [c.number for c in monitor.snapshot()] == [0, 1]
    assert seen == [] and monitor.device_range == frozenset() and monitor.probe_timeout == 1.0


async def test_unreadable_inotify_fd_sets_error_state(tmp_path, plain_monitor):
    monitor = await plain_monitor(ScriptedProbe())

    def broken() -> list[InotifyEvent]:
        raise OSError(5, "Input/output error")

    monitor._watcher.read_events = broken  # type: ignore[method-assign]
    _touch(tmp_path, "video0")
    await asyncio.sleep(0.1)
    assert monitor.state == "error"


# ---- the command-line front ends ----------------------------------------------------------------


def _cli_args(**kw):
    import argparse

    defaults = {"device_dir": None, "json": False, "watch": False, "probe_timeout": None}
    return argparse.Namespace(**{**defaults, **kw})


@pytest.mark.fuse
def test_cameras_command_table_and_json(fake_cameras, capsys):
    import json
    from types import SimpleNamespace

    from camera_service.cameras.cli import run_cameras

    fake_cameras.add("video0", fakecams.uvc_camera())
    fake_cameras.add("video1", fakecams.metadata_node())
    fake_cameras.add("video2", fakecams.querycap_eio_camera())
    fake_cameras.add("video3", fakecams.fractional_camera())

    assert run_cameras(_cli_args(device_dir=fake_cameras.dev_dir)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["DEVICE", "STATUS", "NAME", "RESOLUTION", "FPS", "FORMATS"]
    rows = [line.split(None, 2) for line in lines[1:]]
    assert [(os.path.basename(r[0]), r[1]) for r in rows] == [
        ("video0", "CONNECTED"),
        ("video2", "ERROR"),
        ("video3", "CONNECTED"),
    ]
    assert "Fake Slow Camera  1280x960    7.5  YUYV" in lines[3]

    cfg = SimpleNamespace(
        camera=SimpleNamespace(device_dir=fake_cameras.dev_dir, device_range=(3,), probe_timeout=1)
    )
    assert run_cameras(_cli_args(json=True), cfg) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["device_dir"] == fake_cameras.dev_dir
    assert [c["device"] for c in doc["cameras"]] == [fake_cameras.path("video3")]
    assert doc["cameras"][0] == {
        "device": fake_cameras.path("video3"),
        "status": "CONNECTED",
        "name": "Fake Slow Camera",
        "resolution": "1280x960",
        "fps": 7.5,
        "formats": ["YUYV"],
        "resolutions": ["1280x960", "640x480"],
        "frame_rates": [15, 7.5],
        "fps_options": [15, 7.5],
        "device_info": {
            "driver": "uvcvideo",
            "card": "Fake Slow Camera",
            "bus_info": "usb-0000:00:14.0-3",
            "driver_version": "6.1.0",
        },
        "error": None,
    }


def test_cameras_command_errors(tmp_path, capsys):
    from camera_service.cameras.cli import run_cameras

    missing = str(tmp_path / "nope")
    assert run_cameras(_cli_args(device_dir=missing)) == 1
    assert capsys.readouterr().err == f"camera-service cameras: {missing} is not a directory\n"
    assert run_cameras(_cli_args(device_dir=str(tmp_path), probe_timeout=0)) == 2
    assert "--probe-timeout must be > 0" in capsys.readouterr().err
    assert run_cameras(_cli_args(device_dir=str(tmp_path))) == 0
    assert capsys.readouterr().out == f"no cameras in {tmp_path}\n"


class Lines:
    """A subprocess's output read by a thread, so waits can have a deadline (a select() on the
    pipe would miss lines already sitting in the file object's buffer)."""

    def __init__(self, stream) -> None:
        import queue

        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen = ""
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def until(self, needle: str, timeout: float = 10.0) -> str:
        """The lines up to and including the first one containing `needle`."""
        import queue

        got = ""
        deadline = time.monotonic() + timeout
        while needle not in got:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"{needle!r} not printed within {timeout} s; got:\n{self.seen}")
            if line is None:
                pytest.fail(f"process ended before printing {needle!r}; got:\n{self.seen}")
            got += line
            self.seen += line
        return got


@pytest.mark.fuse
def test_cameras_command_watch_prints_hotplug_until_interrupted(fake_cameras):
    import signal
    import subprocess
    import sys

    fake_cameras.add("video0", fakecams.uvc_camera())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "camera_service",
            "cameras",
            "--device-dir",
            fake_cameras.dev_dir,
            "--watch",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = Lines(proc.stdout)
    try:
        head = out.until("watching")
        assert "CONNECTED  Fake USB Camera" in head
        fake_cameras.add("video5", fakecams.fractional_camera())
        line = out.until("video5")
        assert line.split()[:3] == ["CONNECTED", fake_cameras.path("video5"), "CONNECTED"]
        assert "(1280x960 @ 7.5 fps)" in line
        fake_cameras.remove("video5")
        line = out.until("DISCONNECTED")
        assert line.split()[:3] == ["DISCONNECTED", fake_cameras.path("video5"), "DISCONNECTED"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.fuse
def test_demo_serves_fake_cameras_and_cleans_up(fake_v4l2_mount):
    # fake_v4l2_mount only makes this skip where FUSE is unavailable; the demo mounts its own.
    import re
    import signal
    import subprocess
    import sys

    config = os.path.join(os.path.dirname(__file__), "..", "..", "conf", "test.toml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "camera_service.testing.demo", "--config", config],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out = Lines(proc.stdout)
    try:
        dev_dir = re.search(r"fake cameras in (\S+)", out.until("fake cameras in")).group(1)
        assert sorted(os.listdir(dev_dir)) == ["video0", "video1", "video2", "video4"]
        out.until("watching")  # the monitor's watch is in place: the next plug is an event
        with open(os.path.join(dev_dir, "video6"), "w"):  # plug a spare camera from "a shell"
            pass
        out.until("video6")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
        assert not fakecams.is_mounted(dev_dir)
        assert not os.path.exists(os.path.dirname(dev_dir))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
