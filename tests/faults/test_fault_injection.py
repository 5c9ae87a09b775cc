"""Fault injection on the running service with the FUSE fake cameras.

Every test runs a real Application in the test loop, real WebSocket clients that keep pinging
while the fault happens, and checks three things:

  * the service stays up: every ping during and after the fault is answered ("pong"), none
    fails (rate limiting is switched off so that only real failures count);
  * the registry ends correct: the exact `get_camera_list` result, and the exact
    `camera_status_update` notifications every authenticated client received;
  * no leak: open fds of this process (service + clients + probe threads) come back to the
    baseline within FD_BOUND, RSS grows by less than RSS_BOUND_MB (the service runs in this
    process; a leak per event of even 50 KB would exceed it over the 100-cycle test), and the
    fake daemon holds no open handle (every fd the probes opened on a node was closed).
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_JWT_SECRET, fd_count, mint_token, ws_url

from camera_service.app import Application
from camera_service.client import RpcClient
from camera_service.config import load_config
from camera_service.testing import fakecams

pytestmark = pytest.mark.fuse

METHOD = "camera_status_update"
FD_BOUND = 5  # fds: end count within baseline +- 5
RSS_BOUND_MB = 8.0  # RSS of this process may grow by less than this much over one test
NO_DEVICE_INFO = {"driver": "", "card": "", "bus_info": "", "driver_version": ""}
QUIET = 0.3  # after the last expected notification, how long nothing more may arrive
ALL_IOCTLS = fakecams.PROBE_IOCTLS


# ---- expected wire objects -----------------------------------------------------------------


def streams(n: int, host: str = "localhost", rtsp: int = 8554) -> dict[str, str]:
    return {
        "rtsp": f"rtsp://{host}:{rtsp}/camera{n}",
        "webrtc": f"http://{host}:8889/camera{n}/webrtc",
        "hls": f"http://{host}:8888/camera{n}",
    }


def uvc_entry(
    dev: str, n: int, status: str = "CONNECTED", name: str = "Fake USB Camera", **stream_kw: Any
) -> dict[str, Any]:
    """A uvc_camera() as listed / announced (current format 640x480 YUYV at 30 fps)."""
    return {
        "device": f"{dev}/video{n}",
        "status": status,
        "name": name,
        "resolution": "640x480",
        "fps": 30,
        "streams": {} if status == "DISCONNECTED" else streams(n, **stream_kw),
    }


def error_entry(dev: str, n: int, status: str = "ERROR") -> dict[str, Any]:
    """A node that exists but could not be probed: nothing known but its number."""
    return {
        "device": f"{dev}/video{n}",
        "status": status,
        "name": f"Camera {n}",
        "resolution": "",
        "fps": 0,
        "streams": {} if status == "DISCONNECTED" else streams(n),
    }


def note(params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": METHOD, "params": params}


# What the camera list adds to a CAMERA of a camera that does not record (PROTOCOL 5.16, end);
# notifications carry no recording fields.
NOT_RECORDING = {
    "recording": False,
    "recording_session": None,
    "current_file": None,
    "elapsed_time": 0,
}


def camera_list(*entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "cameras": [{**entry, **NOT_RECORDING} for entry in entries],
        "total": len(entries),
        "connected": sum(e["status"] == "CONNECTED" for e in entries),
    }


# ---- resources -----------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Usage:
    """fd count and RSS of this process at one moment (after a full collection)."""

    def __init__(self) -> None:
        gc.collect()
        self.fds = fd_count()
        self.rss = rss_mb()

    def assert_no_leak_since(self, before: Usage) -> None:
        assert abs(self.fds - before.fds) <= FD_BOUND, (before.fds, self.fds)
        assert self.rss - before.rss < RSS_BOUND_MB, (round(before.rss, 1), round(self.rss, 1))


async def eventually(check, timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll `check()` (sync or async, returns truthy) until it holds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def daemon_handles_closed(mount: fakecams.FakeV4L2Mount, timeout: float = 5.0) -> None:
    """Every fd a probe opened on a fake node has been closed again."""
    await eventually(lambda: mount.stats()["open_handles"] == 0, timeout)


# ---- clients -------------------------------------------------------------------------------


class Pingers:
    """Each client pings in a loop (`interval` s apart); every round trip is timed."""

    def __init__(self, clients: list[RpcClient], interval: float = 0.01) -> None:
        self.clients = clients
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (monotonic sent, latency s)
        self.failures: list[str] = []
        self.counts = [0] * len(clients)
        self._stop = False
        self._tasks: list[asyncio.Task] = []

    def start(self) -> Pingers:
        self._tasks = [asyncio.create_task(self._run(i, c)) for i, c in enumerate(self.clients)]
        return self

    async def _run(self, index: int, client: RpcClient) -> None:
        while not self._stop:
            sent = time.monotonic()
            try:
                result = await client.call("ping", timeout=5)
            except Exception as exc:  # noqa: BLE001 - any failure is what we count
                self.failures.append(f"client {index}: {exc!r}")
                await asyncio.sleep(0.05)
                continue
            if result != "pong":
                self.failures.append(f"client {index}: ping answered {result!r}")
            self.samples.append((sent, time.monotonic() - sent))
            self.counts[index] += 1
            await asyncio.sleep(self.interval)

    def max_latency(self, since: float = 0.0, until: float = float("inf")) -> float:
        window = [lat for sent, lat in self.samples if since <= sent <= until]
        assert window, "no ping in the window"
        return max(window)

    async def stop(self, min_each: int = 1) -> None:
        """Stop, then: no ping failed, and every client got at least `min_each` answers."""
        self._stop = True
        await asyncio.gather(*self._tasks)
        assert self.failures == []
        assert min(self.counts) >= min_each, self.counts


@pytest.fixture
async def clients():
    opened: list[RpcClient] = []

    async def open_clients(app: Application, count: int, role: str | None = "viewer"):
        async def one(i: int) -> RpcClient:
            client = await RpcClient.connect(ws_url(app))
            opened.append(client)
            if role is not None:
                await client.authenticate(mint_token(role, user=f"{role}-{i}"))
            return client

        return list(await asyncio.gather(*(one(i) for i in range(count))))

    yield open_clients
    await asyncio.gather(*(asyncio.wait_for(c.close(), 2) for c in opened), return_exceptions=True)


@pytest.fixture
async def pingers(clients):
    """`pingers(client_list)` -> started Pingers; stopped at teardown even if a test fails
    (before the clients close: this fixture depends on `clients`)."""
    started: list[Pingers] = []

    def start(client_list: list[RpcClient], interval: float = 0.01) -> Pingers:
        p = Pingers(client_list, interval).start()
        started.append(p)
        return p

    yield start
    for p in started:
        p._stop = True
        await asyncio.gather(*p._tasks, return_exceptions=True)


async def start_on_fuse(
    start_app, device_dir: str, probe_timeout: float = 2.0, **extra: dict[str, Any]
) -> Application:
    overrides = {
        "camera": {"device_dir": device_dir, "probe_timeout": probe_timeout},
        "security": {"rate_limit_rpm": 0},
        **extra,
    }
    app = await start_app(overrides)
    await app.monitor.wait_ready(10)
    return app


async def next_notes(client: RpcClient, count: int, timeout: float = 10.0) -> list[dict]:
    return [await client.next_notification(timeout) for _ in range(count)]


async def assert_quiet(*clients: RpcClient, seconds: float = QUIET) -> None:
    await asyncio.sleep(seconds)
    assert [c.pending_notifications() for c in clients] == [0] * len(clients)


async def listed(client: RpcClient) -> dict[str, Any]:
    return await client.call("get_camera_list", timeout=5)


# ---- camera removed mid-probe ------------------------------------------------------------------


async def test_camera_vanishing_mid_probe_is_error_then_disconnected(
    start_app, fake_cameras, clients, pingers
):
    """QUERYCAP answers, then every further ioctl (and every re-open's) sees ENODEV."""
    dev = fake_cameras.dev_dir
    app = await start_on_fuse(start_app, dev)
    cs = await clients(app, 5)
    ping = pingers(cs)
    before = Usage()

    fake_cameras.add("video1", fakecams.vanishing_camera())
    # After the bounded retries (0.05 + 0.1 + 0.2 + 0.4 s) the node is ERROR, announced once.
    for c in cs:
        assert await next_notes(c, 1) == [note(error_entry(dev, 1))]
    await assert_quiet(*cs)
    assert await listed(cs[0]) == camera_list(error_entry(dev, 1))
    status = await cs[0].call("get_camera_status", device=f"{dev}/video1")
    assert (status["status"], status["capabilities"], status["device_info"]) == (
        "ERROR",
        {"formats": [], "resolutions": [], "frame_rates": []},
        NO_DEVICE_INFO,
    )
    caps = await cs[0].call("get_camera_capabilities", device="camera1")
    assert caps == {
        "device": f"{dev}/video1",
        "formats": [],
        "resolutions": [],
        "fps_options": [],
        "validation_status": "disconnected",
    }

    fake_cameras.remove("video1")
    for c in cs:
        assert await next_notes(c, 1) == [note(error_entry(dev, 1, "DISCONNECTED"))]
    await assert_quiet(*cs)
    assert await listed(cs[0]) == camera_list()
    await daemon_handles_closed(fake_cameras)
    await ping.stop(min_each=5)
    Usage().assert_no_leak_since(before)


async def test_unplug_and_replug_while_a_hanging_probe_is_in_flight(
    start_app, fake_cameras, clients, pingers
):
    """The node is unlinked while its QUERYCAP is stuck in the device (not yet timed out):
    the never-announced node is not announced as gone, the stale result is dropped, and a
    camera plugged under the same name meanwhile is probed once the old probe returns."""
    dev = fake_cameras.dev_dir
    app = await start_on_fuse(start_app, dev, probe_timeout=4.0)
    cs = await clients(app, 5)
    ping = pingers(cs)
    before = Usage()

    plugged = time.monotonic()
    fake_cameras.add("video0", fakecams.hanging_camera(seconds=5.0))
    await eventually(lambda: fake_cameras.stats()["open_handles"] == 1)  # probe is in the ioctl
    fake_cameras.remove("video0")
    await assert_quiet(*cs)
    assert await listed(cs[0]) == camera_list()

    fake_cameras.add("video0", fakecams.uvc_camera(card="Replacement"))
    await assert_quiet(*cs)  # waits for the stuck probe of the same name
    assert await listed(cs[0]) == camera_list()
    assert time.monotonic() - plugged < 3.5, "too slow: the 4 s probe deadline would interfere"

    fake_cameras.release_hangs()
    for c in cs:
        assert await next_notes(c, 1) == [note(uvc_entry(dev, 0, name="Replacement"))]
    await assert_quiet(*cs)
    assert await listed(cs[0]) == camera_list(uvc_entry(dev, 0, name="Replacement"))

    fake_cameras.remove("video0")
    for c in cs:
        assert await next_notes(c, 1) == [
            note(uvc_entry(dev, 0, "DISCONNECTED", name="Replacement"))
        ]
    await assert_quiet(*cs)
    assert await listed(cs[0]) == camera_list()
    await daemon_handles_closed(fake_cameras)
    await ping.stop(min_each=5)
    Usage().assert_no_leak_since(before)


# ---- probe hanging past the timeout -------------------------------------------------------------


async def test_probe_hanging_past_the_timeout_is_error_and_the_loop_stays_responsive(
    start_app, fake_cameras, clients, pingers
):
    dev = fake_cameras.dev_dir
    app = await start_on_fuse(start_app, dev, probe_timeout=0.5)
    cs = await clients(app, 5)
    ping = pingers(cs)
    await asyncio.sleep(0.2)
    before = Usage()

    t0 = time.monotonic()
    fake_cameras.add("video0", fakecams.hanging_camera(seconds=5.0))
    fake_cameras.add("video1", fakecams.uvc_camera())  # probed meanwhile, not held up
    first, second = await next_notes(cs[0], 2, timeout=3)
    elapsed = time.monotonic() - t0
    assert first == note(uvc_entry(dev, 1))
    assert second == note(error_entry(dev, 0))
    assert 0.5 <= elapsed < 1.2, elapsed  # ERROR at the 0.5 s deadline, not at the 5 s answer
    for c in cs[1:]:
        assert await next_notes(c, 2) == [first, second]
    # Pings sent while the probe was stuck were answered promptly.
    worst = ping.max_latency(since=t0, until=t0 + elapsed)
    print(
        f"\nERROR after {elapsed * 1000:.0f} ms, max ping latency meanwhile {worst * 1000:.0f} ms"
    )
    assert worst < 0.25, worst
    assert await listed(cs[0]) == camera_list(error_entry(dev, 0), uvc_entry(dev, 1))

    # The late answer of the timed-out probe does not flip the status by itself.
    fake_cameras.release_hangs()
    await daemon_handles_closed(fake_cameras)
    await assert_quiet(*cs)
    assert await listed(cs[0]) == camera_list(error_entry(dev, 0), uvc_entry(dev, 1))

    fake_cameras.remove("video0")
    fake_cameras.remove("video1")
    for c in cs:
        notes = await next_notes(c, 2)
        assert sorted(n["params"]["device"] for n in notes) == [f"{dev}/video0", f"{dev}/video1"]
        assert note(error_entry(dev, 0, "DISCONNECTED")) in notes
        assert note(uvc_entry(dev, 1, "DISCONNECTED")) in notes
    await assert_quiet(*cs)
    assert await listed(cs[0]) == camera_list()
    await ping.stop(min_each=5)
    Usage().assert_no_leak_since(before)


async def test_working_camera_is_listed_while_four_probes_are_stuck(
    start_app, fake_cameras, clients, pingers
):
    """4 hung nodes (as many as the probe pool had threads before bbf81ce) must not keep a
    working camera plugged after them from being probed, listed and announced."""
    dev = fake_cameras.dev_dir
    app = await start_on_fuse(start_app, dev, probe_timeout=0.5)
    cs = await clients(app, 2)
    ping = pingers(cs)
    await asyncio.sleep(0.2)
    before = Usage()
    for n in range(4):
        fake_cameras.add(f"video{n}", fakecams.hanging_camera(seconds=5.0))
    fake_cameras.add("video9", fakecams.uvc_camera())
    await asyncio.sleep(2.0)  # 4 x the probe timeout, well before the hangs end
    entries = [*[error_entry(dev, n) for n in range(4)], uvc_entry(dev, 9)]
    assert await listed(cs[0]) == camera_list(*entries)
    for c in cs:
        notes = await next_notes(c, 5, timeout=1)
        assert sorted(notes, key=lambda m: m["params"]["device"]) == [note(e) for e in entries]
    await assert_quiet(*cs)
    fake_cameras.release_hangs()
    await daemon_handles_closed(fake_cameras)
    await ping.stop(min_each=5)
    Usage().assert_no_leak_since(before)


# ---- EIO on every ioctl -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failing", [ALL_IOCTLS, ALL_IOCTLS[1:]], ids=["every-ioctl", "every-ioctl-after-querycap"]
)
async def test_eio_on_every_ioctl_is_listed_as_error(
    start_app, fake_cameras, clients, pingers, failing
):
    dev = fake_cameras.dev_dir
    app = await start_on_fuse(start_app, dev)
    cs = await clients(app, 5)
    ping = pingers(cs)
    before = Usage()

    spec = fakecams.uvc_camera(card="Broken Firmware")
    spec["faults"] = {"ioctl_errno": {name: errno.EIO for name in failing}}
    fake_cameras.add("video2", spec)
    for c in cs:
        assert await next_notes(c, 1) == [note(error_entry(dev, 2))]
    await assert_quiet(*cs)
    assert await listed(cs[0]) == camera_list(error_entry(dev, 2))
    status = await cs[1].call("get_camera_status", device="camera2")
    assert {k: status[k] for k in ("status", "name", "resolution", "fps", "device_info")} == {
        "status": "ERROR",
        "name": "Camera 2",
        "resolution": "",
        "fps": 0,
        "device_info": NO_DEVICE_INFO,
    }
    camera = app.monitor.get("camera2")
    assert "errno 5" in camera.error and failing[0] in camera.error

    # The device recovers (firmware reset); udev's chmod makes the service look again.
    fake_cameras.set_faults("video2", {})
    fake_cameras.chmod("video2", 0o660)
    for c in cs:
        assert await next_notes(c, 1) == [note(uvc_entry(dev, 2, name="Broken Firmware"))]
    assert await listed(cs[0]) == camera_list(uvc_entry(dev, 2, name="Broken Firmware"))

    fake_cameras.remove("video2")
    for c in cs:
        assert await next_notes(c, 1) == [
            note(uvc_entry(dev, 2, "DISCONNECTED", name="Broken Firmware"))
        ]
    await assert_quiet(*cs)
    assert await listed(cs[0]) == camera_list()
    await daemon_handles_closed(fake_cameras)
    await ping.stop(min_each=5)
    Usage().assert_no_leak_since(before)


# ---- plug/unplug cycles under load -------------------------------------------------------------


async def test_100_plug_unplug_cycles_under_client_load(start_app, fake_cameras, clients, pingers):
    dev = fake_cameras.dev_dir
    app = await start_on_fuse(start_app, dev)
    # Warm the paths up before the baseline (first probe, first broadcast, caches).
    stream = app.monitor.events()
    for i in range(5):
        fake_cameras.add("video0", fakecams.uvc_camera(card=f"Warm-up {i}"))
        assert (await asyncio.wait_for(anext(stream), 5)).kind == "CONNECTED"
        fake_cameras.remove("video0")
        assert (await asyncio.wait_for(anext(stream), 5)).kind == "DISCONNECTED"
    stream.close()

    loaded = await clients(app, 20)
    (observer,) = await clients(app, 1)
    ping = pingers(loaded)
    await asyncio.sleep(0.2)
    before = Usage()

    t0 = time.monotonic()
    expected: list[dict] = []
    for i in range(100):
        card = f"Cycle {i}"
        fake_cameras.add("video0", fakecams.uvc_camera(card=card))
        expected.append(note(uvc_entry(dev, 0, name=card)))
        assert await observer.next_notification(5) == expected[-1], i
        fake_cameras.remove("video0")
        expected.append(note(uvc_entry(dev, 0, "DISCONNECTED", name=card)))
        assert await observer.next_notification(5) == expected[-1], i
    cycling = time.monotonic() - t0

    await ping.stop(min_each=10)
    for c in loaded:
        assert await next_notes(c, 200) == expected
    await assert_quiet(observer, *loaded)
    assert await listed(observer) == camera_list()
    assert os.listdir(dev) == []
    await daemon_handles_closed(fake_cameras)
    after = Usage()
    after.assert_no_leak_since(before)
    print(
        f"\n100 cycles in {cycling:.1f} s, {sum(ping.counts)} pings, max ping latency "
        f"{ping.max_latency() * 1000:.0f} ms, fds {before.fds}->{after.fds}, "
        f"RSS {before.rss:.1f}->{after.rss:.1f} MB"
    )


# ---- inotify queue overflow ----------------------------------------------------------------


QUEUE_KNOB = "/proc/sys/fs/inotify/max_queued_events"


def _sysctl(path: str, value: str | None = None) -> str:
    with open(path, "r+") as f:
        old = f.read().strip()
        if value is not None:
            f.seek(0)
            f.write(value)
    return old


async def test_inotify_overflow_forces_a_rescan_that_matches_the_directory(
    start_app, fake_cameras, clients, pingers
):
    dev = fake_cameras.dev_dir
    for n in range(5):
        fake_cameras.add(f"video{n}", fakecams.uvc_camera(card=f"Early {n}"))
    # The queue limit is copied into an inotify instance when it is created: lowered only
    # while the service starts (its monitor's instance keeps 16 for its lifetime).
    original = _sysctl(QUEUE_KNOB)
    try:
        _sysctl(QUEUE_KNOB, "16")
        app = await start_on_fuse(start_app, dev)
    finally:
        _sysctl(QUEUE_KNOB, original)
    assert _sysctl(QUEUE_KNOB) == original
    monitor = app.monitor
    assert monitor.overflows == 0
    cs = await clients(app, 5)
    ping = pingers(cs)
    await asyncio.sleep(0.2)
    before = Usage()

    # 2 unplugs and 20 plugs (42 events) without letting the loop read: the queue of 16
    # overflows. The registry must be rebuilt from the directory listing.
    fake_cameras.remove("video0")
    fake_cameras.remove("video1")
    for n in range(5, 25):
        fake_cameras.add(f"video{n}", fakecams.uvc_camera(card=f"Late {n}"))

    expected = [note(uvc_entry(dev, n, "DISCONNECTED", name=f"Early {n}")) for n in (0, 1)]
    expected += [note(uvc_entry(dev, n, name=f"Late {n}")) for n in range(5, 25)]

    def key(message: dict) -> str:
        return message["params"]["device"]

    for c in cs:
        got = await next_notes(c, 22)
        assert sorted(got, key=key) == sorted(expected, key=key)  # each change exactly once
    await assert_quiet(*cs)
    assert monitor.overflows == 1
    listing = sorted(os.listdir(dev), key=lambda name: int(name[5:]))
    result = await listed(cs[0])
    assert [e["device"] for e in result["cameras"]] == [f"{dev}/{name}" for name in listing]
    assert result == camera_list(
        *[uvc_entry(dev, n, name=f"Early {n}") for n in range(2, 5)],
        *[uvc_entry(dev, n, name=f"Late {n}") for n in range(5, 25)],
    )
    await daemon_handles_closed(fake_cameras)
    await ping.stop(min_each=5)
    Usage().assert_no_leak_since(before)


# ---- device directory deleted and recreated -------------------------------------------------------


async def test_device_dir_deleted_and_recreated(start_app, fake_cameras, clients, pingers):
    sub = fake_cameras.mkdir("cams")
    fake_cameras.add("cams/video0", fakecams.uvc_camera())
    fake_cameras.add("cams/video1", fakecams.uvc_camera(card="Second"))
    app = await start_on_fuse(start_app, sub)
    cs = await clients(app, 5)
    ping = pingers(cs)
    assert await listed(cs[0]) == camera_list(uvc_entry(sub, 0), uvc_entry(sub, 1, name="Second"))
    await asyncio.sleep(0.2)
    before = Usage()

    def by_device(notes: list[dict]) -> list[dict]:
        return sorted(notes, key=lambda m: m["params"]["device"])

    # 1. The directory goes away with both cameras still in it (moved out of the watched path).
    aside = os.path.join(fake_cameras.dev_dir, "aside")
    os.rename(sub, aside)
    gone = [
        note(uvc_entry(sub, 0, "DISCONNECTED")),
        note(uvc_entry(sub, 1, "DISCONNECTED", name="Second")),
    ]
    for c in cs:
        assert by_device(await next_notes(c, 2)) == gone
    await assert_quiet(*cs)
    assert await listed(cs[0]) == camera_list()

    # 2. Created again, then a camera is plugged into it.
    fake_cameras.mkdir("cams")
    fake_cameras.add("cams/video2", fakecams.uvc_camera(card="Back"))
    for c in cs:
        assert await next_notes(c, 1) == [note(uvc_entry(sub, 2, name="Back"))]
    await assert_quiet(*cs)
    assert await listed(cs[0]) == camera_list(uvc_entry(sub, 2, name="Back"))

    # 3. Emptied and rmdir'ed in one go (the loop reads all of it as one batch).
    fake_cameras.remove("cams/video2")
    os.rmdir(sub)
    for c in cs:
        assert await next_notes(c, 1) == [note(uvc_entry(sub, 2, "DISCONNECTED", name="Back"))]
    await assert_quiet(*cs)
    assert await listed(cs[0]) == camera_list()
    assert app.monitor.state == "running"

    # 4. mkdir again and plug: CONNECTED.
    fake_cameras.mkdir("cams")
    fake_cameras.add("cams/video3", fakecams.uvc_camera(card="Again"))
    for c in cs:
        assert await next_notes(c, 1) == [note(uvc_entry(sub, 3, name="Again"))]
    await assert_quiet(*cs)
    assert await listed(cs[0]) == camera_list(uvc_entry(sub, 3, name="Again"))
    health = await cs[0].call("ping")
    assert health == "pong"
    await daemon_handles_closed(fake_cameras)
    await ping.stop(min_each=5)
    Usage().assert_no_leak_since(before)


# ---- configuration file replaced by an invalid one under load ------------------------------------


class LogRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


def config_text(
    tmp_path: Path, device_dir: str, media_host: str = "localhost", rtsp_port: int = 8554
) -> str:
    return (
        "[server]\n"
        'host = "127.0.0.1"\n'
        "port = 0\n"
        "shutdown_timeout = 2.0\n"
        "\n[security]\n"
        f'jwt_secret = "{TEST_JWT_SECRET}"\n'
        f'state_dir = "{tmp_path / "var"}"\n'
        "rate_limit_rpm = 0\n"
        "\n[camera]\n"
        f'device_dir = "{device_dir}"\n'
        "\n[media]\n"
        f'host = "{media_host}"\n'
        f"rtsp_port = {rtsp_port}\n"
        "\n[logging]\n"
        'level = "warning"\n'
    )


def replace_file(path: Path, data: bytes) -> None:
    """What editors and config management do: write a temporary file, rename it over."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


async def test_config_replaced_by_invalid_files_under_load_keeps_the_running_config(
    tmp_path, fake_cameras, clients, pingers
):
    dev = fake_cameras.dev_dir
    fake_cameras.add("video0", fakecams.uvc_camera())
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    path = conf_dir / "config.toml"
    valid = config_text(tmp_path, dev)
    path.write_text(valid)
    recorder = LogRecorder()
    config_log = logging.getLogger("camera_service.config")
    config_log.addHandler(recorder)
    app = Application(load_config(path, env={}), config_path=str(path), env={})
    await app.start()
    try:
        await app.monitor.wait_ready(10)
        cs = await clients(app, 10)
        ping = pingers(cs)
        running = app.config
        assert await listed(cs[0]) == camera_list(uvc_entry(dev, 0))
        await asyncio.sleep(0.2)
        before = Usage()

        invalid = [
            b"\xff\xfe\x00garbage [[[ = = =\n",  # not UTF-8, not TOML
            valid.encode()[: valid.index('host = "localhost"') + 10],  # cut mid-string
            valid.replace('host = "localhost"', 'hots = "localhost"').encode(),  # typo'd key
            valid.replace("rtsp_port = 8554", 'rtsp_port = "8554"').encode(),  # wrong type
        ]
        for i, data in enumerate(invalid, start=1):
            replace_file(path, data)
            await eventually(lambda i=i: len(recorder.messages(logging.ERROR)) == i)
            assert app.config is running
            assert await listed(cs[i]) == camera_list(uvc_entry(dev, 0))
        # SIGHUP re-reads the (still invalid) file: rejected again, nothing changes.
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: len(recorder.messages(logging.ERROR)) == 5)
        errors = recorder.messages(logging.ERROR)
        assert all(
            m.startswith("configuration reload rejected, keeping the running one: ") for m in errors
        ), errors
        assert "media.hots" in errors[2] and "media.rtsp_port" in errors[3], errors
        assert app.config is running
        assert await listed(cs[9]) == camera_list(uvc_entry(dev, 0))

        # A valid file with a changed live key applies: the URLs change, nothing else does.
        replace_file(path, config_text(tmp_path, dev, "cams.example", 9554).encode())
        new = uvc_entry(dev, 0, host="cams.example", rtsp=9554)
        await eventually(lambda: app.config.media.host == "cams.example")
        assert await listed(cs[0]) == camera_list(new)
        assert app.config.media.rtsp_port == 9554
        assert app.config.server.port == running.server.port
        # ... and the notifications of a camera plugged now use them too.
        fake_cameras.add("video1", fakecams.uvc_camera())
        for c in cs:
            assert await next_notes(c, 1) == [
                note(uvc_entry(dev, 1, host="cams.example", rtsp=9554))
            ]
        assert len(recorder.messages(logging.ERROR)) == 5
        await ping.stop(min_each=10)
        await daemon_handles_closed(fake_cameras)
        Usage().assert_no_leak_since(before)
    finally:
        config_log.removeHandler(recorder)
        await app.stop()
