"""Discovery timings on the FUSE fake cameras: `python -m bench.bench_discovery`.

    probe            time of one v4l2.probe() of a node (real ioctls through FUSE), per spec
    scan32           CameraMonitor.start() until `ready` with 32 cameras present
    hotplug connect  file created in the device dir -> CONNECTED event delivered
    hotplug remove   file unlinked -> DISCONNECTED event delivered

The plug/unplug syscalls run in a worker thread so the event loop is free exactly as it would be
with udev doing them; the clock starts right before the create (or unlink) syscall. Prints one
JSON document, then a table. Figures depend on the machine; FUSE adds a user-space round trip
to every ioctl that a real driver does not have, so probe times here are an upper bound for
simple UVC devices.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

from camera_service.cameras.monitor import CameraChanged, CameraMonitor
from camera_service.devices import v4l2
from camera_service.testing import fakecams


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def _summary(values_s: list[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in values_s]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 3),
        "p99_ms": round(_percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3),
    }


def bench_probe(mount: fakecams.FakeV4L2Mount, count: int) -> dict[str, Any]:
    specs = {
        "uvc": fakecams.uvc_camera(),
        "stepwise": fakecams.stepwise_camera(),
        "mplane": fakecams.mplane_camera(),
    }
    out: dict[str, Any] = {}
    for n, (label, spec) in enumerate(specs.items()):
        path = mount.add(f"video{n}", spec)
        before = mount.stats()["ioctls"]
        v4l2.probe(path)
        ioctls = mount.stats()["ioctls"] - before
        times = []
        for _ in range(count):
            t0 = time.perf_counter()
            v4l2.probe(path)
            times.append(time.perf_counter() - t0)
        out[label] = {**_summary(times), "ioctls_per_probe": ioctls}
    mount.reset()
    return out


async def bench_scan(mount: fakecams.FakeV4L2Mount, rounds: int) -> dict[str, Any]:
    for name, spec in fakecams.many_cameras(32).items():
        mount.add(name, spec)
    times = []
    for _ in range(rounds):
        monitor = CameraMonitor(mount.dev_dir, probe_timeout=5.0)
        t0 = time.perf_counter()
        await monitor.start()
        await monitor.wait_ready(30)
        times.append(time.perf_counter() - t0)
        assert len(monitor.snapshot()) == 32
        await monitor.stop()
    mount.reset()
    return _summary(times)


async def bench_hotplug(mount: fakecams.FakeV4L2Mount, plugs: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    monitor = CameraMonitor(mount.dev_dir, probe_timeout=5.0)
    await monitor.start()
    await monitor.wait_ready(10)
    waiting: dict[str, asyncio.Future[float]] = {}

    def on_event(event: CameraChanged) -> None:
        fut = waiting.pop(event.kind, None)
        if fut is not None and not fut.done():
            fut.set_result(time.perf_counter())

    monitor.subscribe(on_event)
    name = "video0"
    path = mount.path(name)
    spec = fakecams.uvc_camera()

    def plug() -> float:
        t0 = time.perf_counter()
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        os.chmod(path, 0o666)  # the udev-like second event must not cost a second probe
        return t0

    def unplug() -> float:
        t0 = time.perf_counter()
        os.unlink(path)
        return t0

    connect, remove = [], []
    wakeups_before = monitor.wakeups
    try:
        for _ in range(plugs):
            mount.register(name, spec)  # over the socket: no fs event, not timed
            for kind, action, sink in (
                ("CONNECTED", plug, connect),
                ("DISCONNECTED", unplug, remove),
            ):
                fut: asyncio.Future[float] = loop.create_future()
                waiting[kind] = fut
                t0 = await asyncio.to_thread(action)
                t1 = await asyncio.wait_for(fut, 10)
                sink.append(t1 - t0)
    finally:
        wakeups = monitor.wakeups - wakeups_before
        await monitor.stop()
        mount.reset()
    return {
        "connect": _summary(connect),
        "remove": _summary(remove),
        "wakeups_per_plug_cycle": round(wakeups / plugs, 2),
    }


def _table(result: dict[str, Any]) -> str:
    rows = [("measurement", "n", "median ms", "p99 ms", "max ms")]
    for label, data in result["probe"].items():
        rows.append(
            (
                f"probe {label} ({data['ioctls_per_probe']} ioctls)",
                data["n"],
                data["median_ms"],
                data["p99_ms"],
                data["max_ms"],
            )
        )
    s = result["scan32"]
    rows.append(("scan 32 cameras to ready", s["n"], s["median_ms"], s["p99_ms"], s["max_ms"]))
    for key, label in (
        ("connect", "hot-plug create -> CONNECTED"),
        ("remove", "unplug unlink -> DISCONNECTED"),
    ):
        h = result["hotplug"][key]
        rows.append((label, h["n"], h["median_ms"], h["p99_ms"], h["max_ms"]))
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in cells
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


async def _main_async(args: argparse.Namespace, mount: fakecams.FakeV4L2Mount) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "discovery",
        "machine": {
            "python": platform.python_version(),
            "kernel": platform.release(),
            "arch": platform.machine(),
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(),
        },
    }
    result["probe"] = await asyncio.to_thread(bench_probe, mount, args.probes)
    result["scan32"] = await bench_scan(mount, args.scans)
    result["hotplug"] = await bench_hotplug(mount, args.plugs)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_discovery", description=__doc__)
    parser.add_argument("--probes", type=int, default=500, help="probes per spec (default 500)")
    parser.add_argument("--plugs", type=int, default=200, help="plug/unplug cycles (default 200)")
    parser.add_argument("--scans", type=int, default=5, help="32-camera start-ups (default 5)")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON here")
    args = parser.parse_args(argv)
    try:
        mount = fakecams.FakeV4L2Mount.start()
    except fakecams.FuseUnavailable as exc:
        print(f"bench_discovery: FUSE fake cameras unavailable: {exc}", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(_main_async(args, mount))
    finally:
        mount.close()
    doc = json.dumps(result, indent=2)
    print(doc)
    print()
    print(_table(result))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(doc + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
