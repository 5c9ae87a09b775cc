"""One soak client process: many WebSocket clients with mixed methods and reconnect churn.

Started by `soak.run` with its stdin on a pipe. Each client connects, authenticates (every
`--admin-every`-th client as admin, the rest as viewers), sends one request every `--interval`
seconds (jittered) and after a random lifetime of `--churn-min`..`--churn-max` seconds closes
and connects again. Meanwhile it checks what it receives:

  * results have the documented shape (ping -> "pong", get_camera_list totals agree, ...);
  * errors: only -1000 from get_camera_status is expected (the camera was unplugged between
    the list and the call); anything else is a failure;
  * notifications: per connection and device, two in a row never carry the same status (one
    physical event gives one notification).

Prints `READY` once every client has connected once, then `CONNECTS <total connects so far>`
every second; closing stdin (or EOF) stops the clients, which close their connections; the last
stdout line is a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections import Counter
from typing import Any

import jwt
import orjson

from camera_service.client import RpcCallError, RpcClient

PARAM_KEYS = ["device", "status", "name", "resolution", "fps", "streams"]
METRIC_KEYS = {
    "active_connections",
    "total_requests",
    "average_response_time",
    "p50_response_time",
    "p99_response_time",
    "error_rate",
    "memory_usage",
    "cpu_usage",
    "uptime",
}
CAMERA_NOT_FOUND = -1000
MAX_FAILURE_TEXTS = 20


class Stats:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.expected_errors: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.connects = 0
        self.notifications = 0
        self.failures: Counter[str] = Counter()
        self.failure_texts: list[str] = []

    def fail(self, kind: str, text: str) -> None:
        self.failures[kind] += 1
        if len(self.failure_texts) < MAX_FAILURE_TEXTS:
            self.failure_texts.append(f"{kind}: {text}"[:300])


def token(secret: str, role: str, user: str) -> str:
    now = int(time.time())
    return jwt.encode(
        {"user_id": user, "role": role, "iat": now, "exp": now + 7 * 86400},
        secret,
        algorithm="HS256",
    )


def check_result(method: str, params: dict | None, result: Any) -> str | None:
    """None if `result` is what `method` must answer, else what is wrong."""
    if method == "ping":
        return None if result == "pong" else f"ping -> {result!r}"
    if method == "get_camera_list":
        if not isinstance(result, dict) or set(result) != {"cameras", "total", "connected"}:
            return f"get_camera_list -> {result!r}"[:200]
        cameras = result["cameras"]
        connected = sum(c.get("status") == "CONNECTED" for c in cameras)
        if result["total"] != len(cameras) or result["connected"] != connected:
            return f"get_camera_list totals disagree: {result!r}"[:200]
        if any(c.get("status") not in ("CONNECTED", "ERROR") for c in cameras):
            return f"get_camera_list status: {result!r}"[:200]
        return None
    if method == "get_camera_status":
        if not isinstance(result, dict) or result.get("device") != params["device"]:
            return f"get_camera_status({params['device']}) -> {result!r}"[:200]
        return None
    if method == "get_metrics":
        if not isinstance(result, dict) or set(result) != METRIC_KEYS:
            return f"get_metrics -> {result!r}"[:200]
        return None
    return f"unknown method {method}"


class SoakClient:
    def __init__(
        self,
        index: int,
        args: argparse.Namespace,
        stats: Stats,
        stop: asyncio.Event,
        rng: random.Random,
    ) -> None:
        self.index = index
        self.args = args
        self.stats = stats
        self.stop = stop
        self.rng = rng
        self.admin = index % args.admin_every == 0
        self.role = "admin" if self.admin else "viewer"
        self.devices: list[str] = []
        self.connected_once = asyncio.Event()

    def pick(self) -> tuple[str, dict | None]:
        r = self.rng.random()
        if self.admin and r < 0.2:
            return "get_metrics", None
        if r < 0.6:
            return "ping", None
        if r < 0.8 or not self.devices:
            return "get_camera_list", None
        return "get_camera_status", {"device": self.rng.choice(self.devices)}

    async def run(self) -> None:
        secret = os.environ["SOAK_JWT_SECRET"]
        user = f"soak-{self.args.index}-{self.index}"
        while not self.stop.is_set():
            try:
                client = await RpcClient.connect(self.args.url, timeout=10)
            except Exception as exc:  # noqa: BLE001 - every failure counts
                self.stats.fail("connect", repr(exc))
                await self._pause(1.0)
                continue
            self.stats.connects += 1
            try:
                await client.authenticate(token(secret, self.role, user))
                self.connected_once.set()
                await self._session(client)
            except Exception as exc:  # noqa: BLE001
                self.stats.fail("session", repr(exc))
            finally:
                try:
                    await asyncio.wait_for(client.close(), 5)
                except Exception as exc:  # noqa: BLE001
                    self.stats.fail("close", repr(exc))

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            pass

    async def _session(self, client: RpcClient) -> None:
        notes = asyncio.create_task(self._notifications(client))
        lifetime = self.rng.uniform(self.args.churn_min, self.args.churn_max)
        end = time.monotonic() + lifetime
        try:
            while not self.stop.is_set() and time.monotonic() < end:
                method, params = self.pick()
                sent = time.monotonic()
                try:
                    result = await client.call(method, params, timeout=30)
                except RpcCallError as exc:
                    if method == "get_camera_status" and exc.code == CAMERA_NOT_FOUND:
                        self.stats.expected_errors["camera_not_found"] += 1
                    else:
                        self.stats.fail(f"rpc_error {exc.code}", f"{method}: {exc}")
                else:
                    self.stats.latencies.append(time.monotonic() - sent)
                    problem = check_result(method, params, result)
                    if problem:
                        self.stats.fail("bad_result", problem)
                    elif method == "get_camera_list":
                        self.devices = [c["device"] for c in result["cameras"]]
                self.stats.requests[method] += 1
                pause = self.args.interval * self.rng.uniform(0.5, 1.5)
                await self._pause(min(pause, max(0.0, end - time.monotonic())))
        finally:
            notes.cancel()

    async def _notifications(self, client: RpcClient) -> None:
        last: dict[str, str] = {}
        while True:
            message = await client.next_notification(timeout=None)
            self.stats.notifications += 1
            params = message.get("params")
            if (
                message.get("method") != "camera_status_update"
                or not isinstance(params, dict)
                or list(params) != PARAM_KEYS
            ):
                self.stats.fail("bad_notification", orjson.dumps(message).decode())
                continue
            device, status = params["device"], params["status"]
            if last.get(device) == status:
                self.stats.fail("duplicate_notification", f"{device} {status} twice in a row")
            last[device] = status


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        try:
            data = os.read(stdin, 1024)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin)
            stop.set()

    loop.add_reader(stdin, on_stdin)
    stats = Stats()
    rng = random.Random(args.seed)
    clients = [
        SoakClient(i, args, stats, stop, random.Random(rng.random())) for i in range(args.clients)
    ]
    tasks = []
    for client in clients:  # ramp up: spread the first connects over `ramp` seconds
        tasks.append(asyncio.create_task(client.run()))
        await asyncio.sleep(args.ramp / max(1, args.clients))
    ready = asyncio.gather(*(c.connected_once.wait() for c in clients))
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    stopped.cancel()
    print("READY", flush=True)

    async def progress() -> None:  # the parent ends its warm-up on the reconnect count
        while True:
            print(f"CONNECTS {stats.connects}", flush=True)
            await asyncio.sleep(1.0)

    reporter = asyncio.create_task(progress())
    await stop.wait()
    reporter.cancel()
    await asyncio.gather(*tasks)
    lat = sorted(stats.latencies)

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else 0.0

    return {
        "index": args.index,
        "clients": args.clients,
        "requests": dict(stats.requests),
        "total_requests": sum(stats.requests.values()),
        "expected_errors": dict(stats.expected_errors),
        "connects": stats.connects,
        "notifications": stats.notifications,
        "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
        "failures": dict(stats.failures),
        "failure_texts": stats.failure_texts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak.worker")
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--churn-min", type=float, default=2.0)
    parser.add_argument("--churn-max", type=float, default=8.0)
    parser.add_argument("--admin-every", type=int, default=10)
    parser.add_argument("--ramp", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    summary = asyncio.run(main_async(args))
    print(orjson.dumps(summary).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
