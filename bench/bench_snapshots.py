"""Snapshot latency on the FUSE fake cameras: `python -m bench.bench_snapshots`.

    warm    the camera's capture already runs (capture.idle_stop_seconds = 60)
    cold    every snapshot starts the capture (capture.idle_stop_seconds = 0)
    ffmpeg  the reference's way: `ffmpeg -f v4l2 -i NODE -frames:v 1 out.jpg`, one process
            per snapshot, against the same fake camera (the baseline)

for an MJPG and a YUYV camera at 1280x720 @ 30 fps. Latency is request sent -> response
received at a WebSocket client in this process; the service runs as its own process (pinned to
CPU 0 and the client to the others when there are two CPUs), and its CPU time per snapshot
comes from /proc/PID/stat. Prints one JSON document, then a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.common import free_port, mint_jwt, percentile, read_cpu
from camera_service.client import RpcClient
from camera_service.testing import fakecams

SECRET = "bench-snapshot-secret-" + "s" * 40
CAMERAS = {
    "MJPG": ("video0", fakecams.streaming_camera),
    "YUYV": ("video2", fakecams.yuyv_only_camera),
}


def _summary(values_s: list[float]) -> dict[str, Any]:
    ms = sorted(v * 1000 for v in values_s)
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(ms[-1], 2),
    }


def _cpu_seconds(pid: int) -> float:
    return sum(read_cpu(pid))


class Service:
    """`camera-service serve` on the fake mount, as its own process."""

    def __init__(self, workdir: str, dev_dir: str, idle_stop: float, cpus: set[int] | None):
        self.port = free_port()
        self.config = os.path.join(workdir, f"bench-{idle_stop:g}.toml")
        with open(self.config, "w") as fh:
            fh.write(
                f'[server]\nhost = "127.0.0.1"\nport = {self.port}\n'
                f'[security]\njwt_secret = "{SECRET}"\nstate_dir = "{workdir}/var"\n'
                "rate_limit_rpm = 0\n"
                f'[camera]\ndevice_dir = "{dev_dir}"\n'
                f"[capture]\nidle_stop_seconds = {idle_stop}\n"
                '[logging]\nlevel = "warning"\n'
            )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "camera_service", "serve", "--config", self.config],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if cpus:
            os.sched_setaffinity(self.proc.pid, cpus)

    async def connect(self) -> RpcClient:
        deadline = time.monotonic() + 20
        while True:
            try:
                client = await RpcClient.connect(f"ws://127.0.0.1:{self.port}/ws")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        await client.authenticate(mint_jwt(SECRET, role="operator"))
        return client

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def _snapshots(service: Service, device: str, count: int, pause: float) -> dict[str, Any]:
    client = await service.connect()
    try:
        await client.call("take_snapshot", {"device": device})  # warm the code paths
        await asyncio.sleep(pause)
        cpu0 = _cpu_seconds(service.proc.pid)
        times = []
        for _ in range(count):
            t0 = time.perf_counter()
            await client.call("take_snapshot", {"device": device})
            times.append(time.perf_counter() - t0)
            await asyncio.sleep(pause)
        cpu = _cpu_seconds(service.proc.pid) - cpu0
    finally:
        await client.close()
    return {**_summary(times), "server_cpu_ms_per_snapshot": round(cpu / count * 1000, 2)}


def _ffmpeg(node: str, fourcc: str, count: int, workdir: str) -> dict[str, Any]:
    input_format = "mjpeg" if fourcc == "MJPG" else "yuyv422"
    out = os.path.join(workdir, "ffmpeg.jpg")
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        subprocess.run(
            [
                "ffmpeg",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "v4l2",
                "-input_format",
                input_format,
                "-video_size",
                "1280x720",
                "-i",
                node,
                "-frames:v",
                "1",
                out,
            ],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - t0)
    return _summary(times)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = {cpus[0]} if len(cpus) >= 2 and not args.no_pin else None
    if server_cpus:
        os.sched_setaffinity(0, set(cpus) - server_cpus)
    results: dict[str, Any] = {"count": args.count}
    workdir = tempfile.mkdtemp(prefix="bench-snap-")
    with fakecams.FakeV4L2Mount.start() as mount:
        for name, factory in CAMERAS.values():
            mount.add(name, factory())
        for label, idle_stop, pause in (("warm", 60.0, 0.0), ("cold", 0.0, 0.05)):
            service = Service(workdir, mount.dev_dir, idle_stop, server_cpus)
            try:
                for fourcc, (name, _) in CAMERAS.items():
                    results[f"{label} {fourcc}"] = await _snapshots(
                        service, f"camera{name[5:]}", args.count, pause
                    )
            finally:
                service.close()
        if shutil.which("ffmpeg"):
            for fourcc, (name, _) in CAMERAS.items():
                results[f"ffmpeg {fourcc}"] = _ffmpeg(
                    mount.path(name), fourcc, args.ffmpeg_count, workdir
                )
    shutil.rmtree(workdir, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_snapshots", description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="snapshots per scenario")
    parser.add_argument("--ffmpeg-count", type=int, default=20, help="ffmpeg runs per camera")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv)
    results = asyncio.run(main_async(args))
    print(json.dumps(results, indent=2))
    print(f"\n{'scenario':<14} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'CPU ms':>8}")
    for label, row in results.items():
        if isinstance(row, dict):
            cpu = row.get("server_cpu_ms_per_snapshot", "")
            print(f"{label:<14} {row['p50_ms']:>8} {row['p99_ms']:>8} {row['max_ms']:>8} {cpu:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
