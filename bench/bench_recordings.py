"""Recording cost on the FUSE fake cameras: `python -m bench.bench_recordings`.

    capture   one MJPEG 1280x720 @ 30 camera captured with nothing recorded: the share of the
              copy rows that every consumer (snapshots, live view) pays anyway
    copy xN   N MJPEG 1280x720 @ 30 cameras recorded at once with recording.codec = "copy"
    h264      one YUYV 1280x720 @ 30 camera encoded with libx264 (frames dropped reported)
    start     start_recording latency, request to response at a client: warm (the camera's
              capture already runs) and cold (the recording starts the capture)
    ffmpeg    the reference's way, the baseline: `ffmpeg -f v4l2 -i NODE -c copy out.mp4`
              reading the same fake camera for the same time

The service runs as its own process (`camera-service serve`), pinned to CPU 0 when there are
two CPUs (the client and ffmpeg's baseline measurement stay off it, except ffmpeg itself,
which is pinned there too so both run on the same core). CPU is read from /proc/PID/stat over
the recording window (the service's capture threads, the loop and the recording workers all
count); ffmpeg's from its rusage. "per recorded second" divides by the seconds of media the
files hold. Frames written and dropped come from the service's own log line for each stop.
Prints one JSON document, then a table.
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

SECRET = "bench-recording-secret-" + "r" * 40


class CpuMeter:
    """User and system CPU seconds of a process between `start` and `stop`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.user = self.system = 0.0

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.user, self.system = read_cpu(self.pid)

    def stop(self) -> tuple[float, float]:
        """(CPU seconds, wall seconds); `user`/`system` hold the split."""
        user, system = read_cpu(self.pid)
        self.user, self.system = user - self.user, system - self.system
        return self.user + self.system, time.monotonic() - self.t0


class Service:
    """`camera-service serve` on the fake mount, as its own process, logging JSON to a file."""

    def __init__(
        self, workdir: str, dev_dir: str, label: str, cpus: set[int] | None, extra: str = ""
    ):
        self.port = free_port()
        self.workdir = os.path.join(workdir, label)
        os.makedirs(self.workdir)
        self.config = os.path.join(self.workdir, "bench.toml")
        self.log_path = os.path.join(self.workdir, "service.log")
        with open(self.config, "w") as fh:
            fh.write(
                f'[server]\nhost = "127.0.0.1"\nport = {self.port}\n'
                f'[security]\njwt_secret = "{SECRET}"\nstate_dir = "{self.workdir}/var"\n'
                "rate_limit_rpm = 0\n"
                f'[camera]\ndevice_dir = "{dev_dir}"\n'
                '[logging]\nlevel = "info"\nformat = "json"\n' + extra
            )
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "camera_service", "serve", "--config", self.config],
            stdout=self._log,
            stderr=self._log,
        )
        if cpus:
            os.sched_setaffinity(self.proc.pid, cpus)

    @property
    def recordings(self) -> str:
        return os.path.join(self.workdir, "var", "recordings")

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

    def stops(self) -> list[dict[str, Any]]:
        """The service's log lines for ended recordings (frames written / dropped)."""
        lines = []
        with open(self.log_path, "rb") as fh:
            for raw in fh:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if str(line.get("msg", "")).startswith("recording of") and "frames_written" in line:
                    lines.append(line)
        return lines

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        self._log.close()


def _frames(path: str) -> int:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_packets",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
            path,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


async def _record(service: Service, devices: list[str], seconds: float) -> dict[str, Any]:
    """Record `devices` together for `seconds`; CPU over the window."""
    client = await service.connect()
    try:
        # Warm the capture and PyAV's import, so the window holds steady-state work only.
        for device in devices:
            await client.call("start_recording", {"device": device})
        await asyncio.sleep(1.0)
        for device in devices:
            await client.call("stop_recording", {"device": device})
        await asyncio.sleep(0.5)
        meter = CpuMeter(service.proc.pid)
        meter.start()
        for device in devices:
            await client.call("start_recording", {"device": device})
        await asyncio.sleep(seconds)
        results = [await client.call("stop_recording", {"device": d}) for d in devices]
        cpu, wall = meter.stop()
    finally:
        await client.close()
    recorded = sum(r["duration"] for r in results)
    frames = sum(_frames(os.path.join(service.recordings, r["filename"])) for r in results)
    await asyncio.sleep(0.3)
    logged = service.stops()[-len(devices) :]
    return {
        "cameras": len(devices),
        "wall_s": round(wall, 2),
        "recorded_s": round(recorded, 2),
        "server_cpu_s": round(cpu, 3),
        "user_s": round(meter.user, 3),
        "sys_s": round(meter.system, 3),
        "cpu_ms_per_recorded_s": round(1000 * cpu / recorded, 2),
        "cpu_pct_of_core_per_camera": round(100 * cpu / wall / len(devices), 2),
        "frames_in_files": frames,
        "frames_dropped": sum(int(line.get("frames_dropped", 0)) for line in logged),
        "mb_per_recorded_s": round(sum(r["file_size"] for r in results) / recorded / 1e6, 2),
    }


async def _capture_only(service: Service, device: str, seconds: float) -> dict[str, Any]:
    """CPU of a running capture without consumers (kept by capture.idle_stop_seconds)."""
    client = await service.connect()
    try:
        await client.call("take_snapshot", {"device": device})
        await asyncio.sleep(1.0)
        meter = CpuMeter(service.proc.pid)
        meter.start()
        await asyncio.sleep(seconds)
        cpu, wall = meter.stop()
    finally:
        await client.close()
    return {
        "cameras": 1,
        "wall_s": round(wall, 2),
        "recorded_s": 0,
        "server_cpu_s": round(cpu, 3),
        "user_s": round(meter.user, 3),
        "sys_s": round(meter.system, 3),
        "cpu_ms_per_recorded_s": round(1000 * cpu / wall, 2),
        "cpu_pct_of_core_per_camera": round(100 * cpu / wall, 2),
        "frames_in_files": 0,
    }


async def _latency(service: Service, device: str, count: int, pause: float) -> dict[str, Any]:
    client = await service.connect()
    times = []
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            await client.call("start_recording", {"device": device})
            times.append(time.perf_counter() - t0)
            await asyncio.sleep(0.1)
            await client.call("stop_recording", {"device": device})
            await asyncio.sleep(pause)
    finally:
        await client.close()
    ms = sorted(t * 1000 for t in times)
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(ms[-1], 2),
    }


def _ffmpeg(node: str, seconds: float, workdir: str, cpus: set[int] | None) -> dict[str, Any]:
    out = os.path.join(workdir, "ffmpeg.mp4")
    command = [
        "ffmpeg",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "v4l2",
        "-input_format",
        "mjpeg",
        "-video_size",
        "1280x720",
        "-framerate",
        "30",
        "-i",
        node,
        "-t",
        str(seconds),
        "-c",
        "copy",
        out,
    ]
    t0 = time.monotonic()
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    if cpus:
        os.sched_setaffinity(proc.pid, cpus)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg exited with {proc.returncode}")
    cpu = usage.ru_utime + usage.ru_stime  # its whole life: start-up included, as per run
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", out],
        capture_output=True,
        text=True,
        check=True,
    )
    recorded = float(probe.stdout)
    return {
        "cameras": 1,
        "wall_s": round(wall, 2),
        "recorded_s": round(recorded, 2),
        "server_cpu_s": round(cpu, 3),
        "user_s": round(usage.ru_utime, 3),
        "sys_s": round(usage.ru_stime, 3),
        "cpu_ms_per_recorded_s": round(1000 * cpu / recorded, 2),
        "cpu_pct_of_core_per_camera": round(100 * cpu / wall, 2),
        "frames_in_files": _frames(out),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = {cpus[0]} if len(cpus) >= 2 and not args.no_pin else None
    if server_cpus:
        os.sched_setaffinity(0, set(cpus) - server_cpus)
    results: dict[str, Any] = {"seconds": args.seconds}
    workdir = tempfile.mkdtemp(prefix="bench-rec-")
    with fakecams.FakeV4L2Mount.start() as mount:
        for n in range(4):
            mount.add(f"video{n}", fakecams.streaming_camera(bus_info=f"usb-bench-{n}"))
        mount.add("video8", fakecams.yuyv_only_camera())
        service = Service(
            workdir, mount.dev_dir, "copy", server_cpus, "[capture]\nidle_stop_seconds = 60\n"
        )
        try:
            results["capture only"] = await _capture_only(service, "camera0", args.seconds)
            for count in (1, 2, 4):
                devices = [f"camera{n}" for n in range(count)]
                results[f"copy x{count}"] = await _record(service, devices, args.seconds)
        finally:
            service.close()
        service = Service(
            workdir, mount.dev_dir, "h264", server_cpus, '[recording]\ncodec = "h264"\n'
        )
        try:
            results["h264 YUYV"] = await _record(service, ["camera8"], args.seconds)
        finally:
            service.close()
        for label, idle_stop in (("warm", 60), ("cold", 0)):
            service = Service(
                workdir,
                mount.dev_dir,
                f"start-{label}",
                server_cpus,
                f"[capture]\nidle_stop_seconds = {idle_stop}\n",
            )
            try:
                # PyAV's import and the code paths, once (cold: the capture stops again).
                await _latency(service, "camera0", 1, 0.3)
                results[f"start_recording {label}"] = await _latency(
                    service, "camera0", args.starts, 0.05 if label == "warm" else 0.3
                )
            finally:
                service.close()
        if shutil.which("ffmpeg"):
            results["ffmpeg -c copy (baseline)"] = _ffmpeg(
                mount.path("video0"), args.seconds, workdir, server_cpus
            )
    shutil.rmtree(workdir, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_recordings", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="recording window")
    parser.add_argument("--starts", type=int, default=50, help="start_recording calls per row")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv)
    results = asyncio.run(main_async(args))
    print(json.dumps(results, indent=2))
    print(
        f"\n{'scenario':<28} {'CPU ms/rec s':>12} {'% core/cam':>10} {'user s':>7} {'sys s':>7} "
        f"{'frames':>7} {'dropped':>7}"
    )
    for label, row in results.items():
        if isinstance(row, dict) and "server_cpu_s" in row:
            print(
                f"{label:<28} {row['cpu_ms_per_recorded_s']:>12} "
                f"{row['cpu_pct_of_core_per_camera']:>10} {row['user_s']:>7} {row['sys_s']:>7} "
                f"{row['frames_in_files']:>7} "
                f"{row.get('frames_dropped', '')!s:>7}"
            )
    print(f"\n{'start_recording':<28} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, row in results.items():
        if isinstance(row, dict) and "p50_ms" in row:
            print(f"{label:<28} {row['p50_ms']:>8} {row['p99_ms']:>8} {row['max_ms']:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
