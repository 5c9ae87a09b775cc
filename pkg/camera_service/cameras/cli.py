"""`camera-service cameras`: what discovery sees, without starting the server.

    camera-service cameras [--device-dir DIR] [--json] [--watch]

It runs the same CameraMonitor as the service (same probing, same filtering of metadata
nodes), prints the list as a table or JSON, and with --watch keeps printing hot-plug events
until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any, TextIO

import orjson

from camera_service.cameras.model import Camera, camera_summary
from camera_service.cameras.monitor import CameraChanged, CameraMonitor

DEFAULT_DEVICE_DIR = "/dev"
DEFAULT_PROBE_TIMEOUT = 2.0


def add_cameras_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "cameras",
        help="list the cameras found in the device directory (and follow hot-plug)",
        description="Probe the videoN nodes the way the service does and print the cameras.",
    )
    parser.add_argument(
        "--device-dir",
        metavar="DIR",
        help="directory holding the videoN nodes (default: camera.device_dir, else /dev)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--watch", action="store_true", help="after the list, print hot-plug events until Ctrl-C"
    )
    parser.add_argument(
        "--probe-timeout",
        type=float,
        metavar="SECONDS",
        help="give up on a node after this long (default: camera.probe_timeout, else 2)",
    )
    return parser


def camera_json(camera: Camera) -> dict[str, Any]:
    """The list entry's device fields (as the API reports them) plus all that was probed."""
    return {
        **camera_summary(camera),
        "formats": list(camera.formats),
        "resolutions": list(camera.resolutions),
        "frame_rates": list(camera.frame_rates),
        "fps_options": list(camera.fps_options),
        "device_info": dict(camera.device_info),
        "error": camera.error,
    }


def _fps_text(fps: float) -> str:
    return f"{fps:g}" if fps else "-"


def format_table(cameras: tuple[Camera, ...] | list[Camera], device_dir: str) -> str:
    if not cameras:
        return f"no cameras in {device_dir}"
    header = ("DEVICE", "STATUS", "NAME", "RESOLUTION", "FPS", "FORMATS")
    rows = [
        (
            c.device,
            c.status,
            c.name,
            c.resolution or "-",
            _fps_text(c.fps),
            ",".join(c.formats) if c.formats else (c.error or "-"),
        )
        for c in cameras
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for row in (header, *rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_event(event: CameraChanged) -> str:
    c = event.camera
    detail = c.error if c.error else f"{c.resolution or '-'} @ {_fps_text(c.fps)} fps"
    return f"{event.kind:<15} {c.device}  {c.status}  {c.name}  ({detail})"


async def _run(
    device_dir: str,
    device_range: tuple[int, ...],
    probe_timeout: float,
    as_json: bool,
    watch: bool,
    out: TextIO,
) -> int:
    monitor = CameraMonitor(device_dir, device_range, probe_timeout)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if watch:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)

    def on_event(event: CameraChanged) -> None:
        if as_json:
            line = orjson.dumps({"event": event.kind, "camera": camera_json(event.camera)})
            out.write(line.decode() + "\n")
        else:
            out.write(format_event(event) + "\n")
        out.flush()

    await monitor.start()
    try:
        # Every node gets an answer within the probe timeout plus the permission retries.
        await monitor.wait_ready(probe_timeout * 2 + 5)
        cameras = monitor.snapshot()
        if as_json:
            doc = {"device_dir": monitor.device_dir, "cameras": [camera_json(c) for c in cameras]}
            out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            out.write(format_table(cameras, monitor.device_dir) + "\n")
        out.flush()
        if watch:
            monitor.subscribe(on_event)
            if not as_json:
                out.write(f"watching {monitor.device_dir} for hot-plug (Ctrl-C to stop)\n")
                out.flush()
            await stop.wait()
    finally:
        await monitor.stop()
    return 0


def run_cameras(args: argparse.Namespace, config: Any = None) -> int:
    """Entry point of the `cameras` command; `config` (optional) supplies the defaults."""
    camera_cfg = getattr(config, "camera", None)
    if args.device_dir:
        device_dir = args.device_dir
        device_range: tuple[int, ...] = ()  # the configured range belongs to the configured dir
    else:
        device_dir = getattr(camera_cfg, "device_dir", DEFAULT_DEVICE_DIR)
        device_range = tuple(getattr(camera_cfg, "device_range", ()))
    probe_timeout = args.probe_timeout
    if probe_timeout is None:
        probe_timeout = getattr(camera_cfg, "probe_timeout", DEFAULT_PROBE_TIMEOUT)
    if probe_timeout <= 0:
        print("camera-service cameras: --probe-timeout must be > 0", file=sys.stderr)
        return 2
    if not args.watch and not os.path.isdir(device_dir):
        print(f"camera-service cameras: {device_dir} is not a directory", file=sys.stderr)
        return 1
    try:
        return asyncio.run(
            _run(device_dir, device_range, float(probe_timeout), args.json, args.watch, sys.stdout)
        )
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"camera-service cameras: cannot watch {device_dir}: {exc}", file=sys.stderr)
        return 1
