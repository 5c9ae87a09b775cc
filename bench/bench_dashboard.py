"""What the web dashboard costs the service: `python -m bench.bench_dashboard`.

Four FUSE fake cameras (MJPG 1280x720 @ 30 fps); the service runs as its own process pinned
to CPU 0, the clients to the other CPU. Over a fixed window, after a warm-up:

    idle        nobody connected (the floor)
    viewers     4 plain HTTP clients reading `GET /stream/cameraN.mjpeg` as fast as they can
    browser     Debian's chromium (headless, Playwright) with a blank page holding only four
                `<img src="/stream/cameraN.mjpeg?token=...">`: 4 live viewers in a browser
    dashboard   the same chromium with the dashboard open and signed in as admin: 4 live
                views, the WebSocket session, the lists and the admin panel

Server CPU comes from /proc/PID/stat (all threads), bytes sent from `get_streams`
(`bytes_sent`, what the service wrote for the live views). Each scenario runs `--repeat`
times, interleaved; medians are reported. Prints one JSON document, then a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from bench.bench_snapshots import SECRET, Service
from bench.common import mint_jwt, read_cpu
from camera_service.testing import fakecams

CAMERAS = ["video0", "video1", "video2", "video3"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def _bytes_sent(service: Service) -> int:
    client = await service.connect()
    try:
        streams = await client.call("get_streams")
    finally:
        await client.close()
    return sum(entry["bytes_sent"] for entry in streams)


async def _measure(service: Service, seconds: float) -> dict[str, Any]:
    """Server CPU and live-view bytes over `seconds`, the window bracketed by two reads."""
    sent0 = await _bytes_sent(service)
    user0, sys0 = read_cpu(service.proc.pid)
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    user1, sys1 = read_cpu(service.proc.pid)
    elapsed = time.monotonic() - t0
    sent = await _bytes_sent(service) - sent0
    cpu = user1 - user0 + sys1 - sys0
    return {
        "cpu_percent": round(cpu / elapsed * 100, 2),
        "user_percent": round((user1 - user0) / elapsed * 100, 2),
        "sys_percent": round((sys1 - sys0) / elapsed * 100, 2),
        "mb_per_s": round(sent / elapsed / 1e6, 2),
        "cpu_ms_per_mb": round(cpu * 1000 / (sent / 1e6), 2) if sent else None,
    }


async def _viewer(port: int, path: str, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    try:
        while not stop.is_set():
            if not await reader.read(1 << 18):
                break
    finally:
        writer.close()


async def _viewers(service: Service, warmup: float, seconds: float) -> dict[str, Any]:
    token = mint_jwt(SECRET, role="viewer")
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(_viewer(service.port, f"/stream/camera{n}.mjpeg?token={token}", stop))
        for n in range(len(CAMERAS))
    ]
    await asyncio.sleep(warmup)
    result = await _measure(service, seconds)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


async def _in_chromium(
    service: Service, warmup: float, seconds: float, dashboard: bool
) -> dict[str, Any]:
    """Chromium with either the dashboard signed in as admin, or a blank page holding only
    four <img> tags of the live views (what any browser viewer costs)."""
    from playwright.async_api import async_playwright

    profile = tempfile.mkdtemp(prefix="bench-dashboard-")
    base = f"http://127.0.0.1:{service.port}"
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = await context.new_page()
            if dashboard:
                await page.goto(f"{base}/")
                await page.get_by_label("JWT or API key").fill(mint_jwt(SECRET, role="admin"))
                await page.get_by_role("button", name="Sign in").click()
            else:
                token = mint_jwt(SECRET, role="viewer")
                await page.set_content(
                    "".join(
                        f'<img class="live" width="320" src="{base}/stream/camera{n}.mjpeg'
                        f'?token={token}">'
                        for n in range(len(CAMERAS))
                    )
                )
            deadline = time.monotonic() + 20
            while await page.evaluate(
                "() => [...document.querySelectorAll('img.live')]"
                ".filter((i) => i.naturalWidth > 0).length"
            ) < len(CAMERAS):
                if time.monotonic() > deadline:
                    raise RuntimeError("chromium did not show 4 live views")
                await asyncio.sleep(0.1)
            await asyncio.sleep(warmup)
            return await _measure(service, seconds)
        finally:
            await context.close()
            shutil.rmtree(profile, ignore_errors=True)


async def _browser_imgs(service: Service, warmup: float, seconds: float) -> dict[str, Any]:
    return await _in_chromium(service, warmup, seconds, dashboard=False)


async def _dashboard(service: Service, warmup: float, seconds: float) -> dict[str, Any]:
    return await _in_chromium(service, warmup, seconds, dashboard=True)


async def _idle(service: Service, warmup: float, seconds: float) -> dict[str, Any]:
    await asyncio.sleep(warmup)
    return await _measure(service, seconds)


SCENARIOS = {
    "idle": _idle,
    "viewers": _viewers,
    "browser": _browser_imgs,
    "dashboard": _dashboard,
}


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": runs}
    for key in runs[0]:
        values = [run[key] for run in runs if run[key] is not None]
        out[key] = round(statistics.median(values), 2) if values else None
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = {cpus[0]} if len(cpus) >= 2 and not args.no_pin else None
    if server_cpus:  # this process, its viewers and chromium (a child) on the other CPUs
        os.sched_setaffinity(0, set(cpus) - server_cpus)
    workdir = tempfile.mkdtemp(prefix="bench-dash-")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SCENARIOS}
    with fakecams.FakeV4L2Mount.start() as mount:
        for name in CAMERAS:
            mount.add(name, fakecams.streaming_camera(card=f"Bench Camera {name[5:]}"))
        service = Service(workdir, mount.dev_dir, 1.0, server_cpus)
        try:
            await service.connect()  # waits until it listens
            for _ in range(args.repeat):
                for name, scenario in SCENARIOS.items():
                    runs[name].append(await scenario(service, args.warmup, args.seconds))
                    await asyncio.sleep(2)  # captures stop (idle_stop_seconds = 1)
        finally:
            service.close()
    shutil.rmtree(workdir, ignore_errors=True)
    results: dict[str, Any] = {
        "seconds": args.seconds,
        "repeat": args.repeat,
        "cameras": "4 x MJPG 1280x720 @ 30 fps (FUSE fakes)",
        "server_cpus": sorted(server_cpus) if server_cpus else None,
    }
    for name, scenario_runs in runs.items():
        results[name] = _median(scenario_runs)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_dashboard", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each window")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv)
    if not os.access(CHROMIUM, os.X_OK):
        print(f"{CHROMIUM} is missing (apt install chromium)", file=sys.stderr)
        return 2
    results = asyncio.run(main_async(args))
    print(json.dumps(results, indent=2))
    print(f"\n{'scenario':<10} {'CPU %':>6} {'user':>6} {'sys':>6} {'MB/s':>6} {'CPU ms/MB':>10}")
    for name in SCENARIOS:
        row = results[name]
        print(
            f"{name:<10} {row['cpu_percent']:>6} {row['user_percent']:>6} {row['sys_percent']:>6}"
            f" {row['mb_per_s']:>6} {row['cpu_ms_per_mb']!s:>10}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
