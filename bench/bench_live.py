"""Live view cost on the FUSE fake cameras: `python -m bench.bench_live`.

For an MJPG and a YUYV camera at 1280x720 @ 30 fps, with 1, 10 and 50 viewers of
`GET /stream/cameraN.mjpeg`:

    server CPU     % of one core over a fixed window (/proc/PID/stat), and per frame sent
    frames/s       delivered per viewer (a viewer that cannot keep up skips frames)
    latency        frame left the driver (the part's X-Timestamp) -> part fully read by the
                   viewer, p50/p99
    ping p99       WebSocket `ping` round trips during the 50-viewer run

Baseline in the same run: what a naive setup does, one `ffmpeg -f v4l2 ... -f mpjpeg
-listen 1 http://...` process per viewer, transcoding the device to MJPEG. A real V4L2 device
streams to one reader at a time (a second opener gets EBUSY), so a naive setup cannot even
serve two viewers; its CPU for one viewer is measured and N viewers would cost at least N
times that. The service runs as its own process pinned to CPU 0, the viewers to the other CPUs.
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

from bench.bench_snapshots import CAMERAS, SECRET, Service
from bench.common import free_port, mint_jwt, percentile, read_cpu

BOUNDARY = b"--camera-service-frame\r\n"
VIEWER_COUNTS = (1, 10, 50)


class Viewer:
    """Reads a multipart stream over HTTP/1.0 (no chunking) and notes each part's age."""

    def __init__(self) -> None:
        self.frames = 0
        self.latencies: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def run(self, port: int, path: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
        try:
            await reader.readuntil(b"\r\n\r\n")  # the response head
            while True:
                await reader.readuntil(BOUNDARY)
                head = await reader.readuntil(b"\r\n\r\n")
                fields = dict(
                    line.split(b": ", 1) for line in head.strip().split(b"\r\n") if b": " in line
                )
                await reader.readexactly(int(fields[b"Content-Length"]))
                self.latencies.append(time.time() - float(fields[b"X-Timestamp"]))
                self.frames += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


def _cpu(pid: int) -> float:
    return sum(read_cpu(pid))


async def _pinger(port: int, seconds: float) -> None:
    """`--pinger`: ping every 20 ms for `seconds`, print the round trips (ms) as JSON. A
    process of its own, so that the viewers' parsing never delays its readings."""
    from camera_service.client import RpcClient

    client = await RpcClient.connect(f"ws://127.0.0.1:{port}/ws")
    await client.authenticate(mint_jwt(SECRET, role="viewer"))
    times = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        await client.call("ping")
        times.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.02)
    await client.close()
    print(json.dumps(times))


async def _viewers(service: Service, camera: str, count: int, seconds: float) -> dict[str, Any]:
    token = mint_jwt(SECRET, role="viewer")
    path = f"/stream/{camera}.mjpeg?token={token}"
    viewers = [Viewer() for _ in range(count)]
    for viewer in viewers:
        viewer.task = asyncio.create_task(viewer.run(service.port, path))
    client = await service.connect()
    await asyncio.sleep(2.0)  # capture started, every viewer streaming
    for viewer in viewers:
        viewer.frames, viewer.latencies = 0, []
    pinger = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bench_live",
        "--pinger",
        str(service.port),
        "--seconds",
        str(seconds),
        stdout=subprocess.PIPE,
    )
    cpu0, t0 = _cpu(service.proc.pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = _cpu(service.proc.pid) - cpu0, time.monotonic() - t0
    frames = sum(v.frames for v in viewers)
    latencies = sorted(lat * 1000 for v in viewers for lat in v.latencies)
    out, _ = await pinger.communicate()
    ping_ms = sorted(json.loads(out))
    for viewer in viewers:
        assert viewer.task is not None
        viewer.task.cancel()
    await client.close()
    await asyncio.sleep(0.5)
    return {
        "viewers": count,
        "server_cpu_percent": round(cpu / wall * 100, 1),
        "server_cpu_us_per_frame_sent": round(cpu / max(frames, 1) * 1e6, 1),
        "fps_per_viewer": round(frames / wall / count, 1),
        "latency_p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "latency_p99_ms": round(percentile(latencies, 99), 2) if latencies else None,
        "ping_p50_ms": round(statistics.median(ping_ms), 2),
        "ping_p99_ms": round(percentile(ping_ms, 99), 2),
    }


async def _ffmpeg_viewer(node: str, fourcc: str, seconds: float, cpus: set[int] | None) -> dict:
    """One naive ffmpeg process transcoding the device to MJPEG over HTTP, one viewer."""
    port = free_port()
    input_format = "mjpeg" if fourcc == "MJPG" else "yuyv422"
    proc = subprocess.Popen(
        ["ffmpeg", "-loglevel", "error", "-f", "v4l2", "-input_format", input_format]
        + ["-video_size", "1280x720", "-i", node, "-c:v", "mjpeg", "-q:v", "5"]
        + ["-f", "mpjpeg", "-listen", "1", f"http://127.0.0.1:{port}/live.mjpeg"],
        stdin=subprocess.DEVNULL,
    )
    if cpus:
        os.sched_setaffinity(proc.pid, cpus)
    viewer = _MpjpegViewer()
    deadline = time.monotonic() + 10
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            await asyncio.sleep(0.1)
    task = asyncio.create_task(viewer.run(reader, writer))
    await asyncio.sleep(2.0)
    viewer.frames = 0
    cpu0, t0 = _cpu(proc.pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = _cpu(proc.pid) - cpu0, time.monotonic() - t0
    frames = viewer.frames
    task.cancel()
    proc.kill()
    proc.wait(5)
    return {
        "viewers": 1,
        "ffmpeg_cpu_percent": round(cpu / wall * 100, 1),
        "ffmpeg_cpu_us_per_frame_sent": round(cpu / max(frames, 1) * 1e6, 1),
        "fps_per_viewer": round(frames / wall, 1),
    }


class _MpjpegViewer:
    """Counts the parts of ffmpeg's mpjpeg output (boundary `--ffmpeg`)."""

    def __init__(self) -> None:
        self.frames = 0

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET /live.mjpeg HTTP/1.0\r\nHost: bench\r\n\r\n")
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = [
                    line
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ]
                if length:
                    await reader.readexactly(int(length[0].split(b":")[1]))
                    self.frames += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from camera_service.testing import fakecams

    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = {cpus[0]} if len(cpus) >= 2 and not args.no_pin else None
    if server_cpus:
        os.sched_setaffinity(0, set(cpus) - server_cpus)
    results: dict[str, Any] = {"seconds": args.seconds}
    workdir = tempfile.mkdtemp(prefix="bench-live-")
    with fakecams.FakeV4L2Mount.start() as mount:
        for name, factory in CAMERAS.values():
            mount.add(name, factory())
        service = Service(workdir, mount.dev_dir, 60.0, server_cpus)
        try:
            await (await service.connect()).close()
            for fourcc, (name, _) in CAMERAS.items():
                if fourcc not in args.formats:
                    continue
                for count in VIEWER_COUNTS:
                    results[f"{fourcc} x{count}"] = await _viewers(
                        service, f"camera{name[5:]}", count, args.seconds
                    )
        finally:
            service.close()
        if shutil.which("ffmpeg") and not args.no_baseline:
            for fourcc, (name, _) in CAMERAS.items():
                if fourcc not in args.formats:
                    continue
                results[f"ffmpeg {fourcc} x1"] = await _ffmpeg_viewer(
                    mount.path(name), fourcc, args.seconds, server_cpus
                )
    shutil.rmtree(workdir, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_live", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--formats", default="MJPG,YUYV", help="cameras to measure")
    parser.add_argument("--no-baseline", action="store_true", help="skip the ffmpeg rows")
    parser.add_argument("--pinger", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pinger:
        asyncio.run(_pinger(args.pinger, args.seconds))
        return 0
    results = asyncio.run(main_async(args))
    print(json.dumps(results, indent=2))
    print(
        f"\n{'scenario':<14} {'CPU %':>7} {'us/frame':>9} {'fps/viewer':>10} "
        f"{'lat p50':>8} {'lat p99':>8} {'ping p99':>8}"
    )
    for label, row in results.items():
        if isinstance(row, dict):
            cpu = row.get("server_cpu_percent", row.get("ffmpeg_cpu_percent"))
            per = row.get("server_cpu_us_per_frame_sent", row.get("ffmpeg_cpu_us_per_frame_sent"))
            print(
                f"{label:<14} {cpu:>7} {per:>9} {row['fps_per_viewer']:>10} "
                f"{row.get('latency_p50_ms', ''):>8} {row.get('latency_p99_ms', ''):>8} "
                f"{row.get('ping_p99_ms', ''):>8}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
