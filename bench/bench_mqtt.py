"""Fleet bridge (MQTT) on a real Mosquitto: `python -m bench.bench_mqtt`.

    hotplug  a FUSE fake camera is created in the device directory -> its retained `state`
             (CONNECTED) arrives at an MQTT subscriber; and unlinked -> the empty retained
             payload arrives. The service runs as its own process (`camera-service serve`
             with `[mqtt] enabled`), pinned to CPU 0 when there are two CPUs; the broker and
             this process (the plugging and the subscriber) use the others.
    fleet    100 boxes: 100 bridge instances (node ids box000..box099, each with its own MQTT
             connection) in one process over one camera monitor, against one Mosquitto. Each
             plug or unplug is one state change on every box; the broker's and the bridges'
             CPU time per state change come from /proc/PID/stat, and the time until the last
             box's state reached the subscriber is the fan-in latency.

Prints one JSON document, then a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import mint_jwt, percentile, read_cpu
from camera_service.client import RpcClient
from camera_service.testing import fakecams
from camera_service.testing.mosquitto import Broker, free_port

SECRET = "bench-mqtt-secret-" + "s" * 40
PLUG = "video1"


def _summary(values_s: list[float]) -> dict[str, Any]:
    ms = sorted(v * 1000 for v in values_s)
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(ms[-1], 2),
    }


def _cpu(pid: int) -> float:
    return sum(read_cpu(pid))


class Subscriber:
    """Records when each (topic, payload) arrives; `wait(topic, predicate)` for the next one."""

    def __init__(self, port: int, topic_filter: str) -> None:
        self.port = port
        self.filter = topic_filter
        self.waiters: list[tuple[Any, asyncio.Future[float]]] = []

    async def __aenter__(self) -> Subscriber:
        import aiomqtt

        self.client = aiomqtt.Client("127.0.0.1", self.port, identifier=f"bench-sub-{os.getpid()}")
        await self.client.__aenter__()
        await self.client.subscribe(self.filter, qos=1)
        self.task = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await self.client.__aexit__(None, None, None)

    async def _read(self) -> None:
        async for message in self.client.messages:
            now = time.perf_counter()
            payload = message.payload if isinstance(message.payload, bytes) else b""
            topic = message.topic.value
            for item in list(self.waiters):
                match, future = item
                if not future.done() and match(topic, payload):
                    future.set_result(now)
                    self.waiters.remove(item)

    def expect(self, match: Any) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters.append((match, future))
        return future


def _is_state(status: bytes | None):
    def match(topic: str, payload: bytes) -> bool:
        if not topic.endswith("/cameras/camera1/state"):
            return False
        if status is None:
            return payload == b""
        return payload != b"" and orjson.loads(payload)["status"] == status.decode()

    return match


class Notes:
    """The same service's WebSocket notifications, for comparison: both paths start at the
    same CameraChanged event, so the difference is the bridge + broker's share."""

    def __init__(self, client: RpcClient) -> None:
        self.client = client
        self.waiters: list[tuple[str, asyncio.Future[float]]] = []
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for note in self.client.notifications():
            now = time.perf_counter()
            status = note["params"]["status"]
            for item in list(self.waiters):
                if item[0] == status and not item[1].done():
                    item[1].set_result(now)
                    self.waiters.remove(item)

    def expect(self, status: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters.append((status, future))
        return future


async def _plug_cycle(
    mount: fakecams.FakeV4L2Mount,
    sub: Subscriber,
    spec: dict,
    count: int,
    boxes: int = 1,
    notes: Notes | None = None,
    settle: Any = None,
) -> dict[str, list[float]]:
    """`count` plug + unplug cycles; latency until `boxes` states arrived, each way (and
    until the WebSocket notification arrived, with `notes`)."""
    out: dict[str, list[float]] = {"plug": [], "unplug": [], "ws_plug": [], "ws_unplug": []}
    for _ in range(count):
        for status, key in ((b"CONNECTED", "plug"), (None, "unplug")):
            futures = [sub.expect(_is_state(status)) for _ in range(boxes)]
            note = notes.expect(status.decode() if status else "DISCONNECTED") if notes else None
            t0 = time.perf_counter()
            if status is None:
                await asyncio.to_thread(mount.remove, PLUG)
            else:
                await asyncio.to_thread(mount.add, PLUG, spec)
            arrivals = await asyncio.wait_for(asyncio.gather(*futures), 30)
            out[key].append(max(arrivals) - t0)
            if note is not None:
                out["ws_" + key].append(await asyncio.wait_for(note, 30) - t0)
            if settle is not None:
                await settle()
    return out


async def start_service(
    workdir: str, dev_dir: str, mqtt_port: int | None, cpus: list[int]
) -> tuple[asyncio.subprocess.Process, int]:
    """`camera-service serve` as its own process (pinned to the first CPU when there are
    two); `mqtt_port` None = bridge off. Returns once it accepts connections."""
    port = free_port()
    config = Path(workdir, f"service-{port}.toml")
    mqtt = (
        f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {mqtt_port}\nnode_id = "bench"\n'
        if mqtt_port is not None
        else ""
    )
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[security]\njwt_secret = "{SECRET}"\nstate_dir = "{workdir}/var"\n'
        "rate_limit_rpm = 0\n"
        f'[camera]\ndevice_dir = "{dev_dir}"\n'
        '[logging]\nlevel = "warning"\n' + mqtt
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "camera_service", "serve", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    if len(cpus) >= 2:
        os.sched_setaffinity(proc.pid, {cpus[0]})
    deadline = time.monotonic() + 20
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return proc, port


async def bench_ping(
    mount: fakecams.FakeV4L2Mount, broker: Broker, workdir: str, count: int, cpus: list[int]
) -> dict[str, Any]:
    """WebSocket ping round trips (one connection, closed loop) with the bridge off, on with
    the broker down (it keeps retrying), and on with the broker up."""
    down_port = free_port()  # nothing listens there: every attempt is refused
    out: dict[str, Any] = {}
    for label, mqtt_port in (("off", None), ("broker down", down_port), ("broker up", broker.port)):
        proc, port = await start_service(workdir, mount.dev_dir, mqtt_port, cpus)
        try:
            client = await RpcClient.connect(f"ws://127.0.0.1:{port}/ws")
            await client.authenticate(mint_jwt(SECRET))
            for _ in range(200):  # warm up
                await client.call("ping")
            times = []
            for _ in range(count):
                t0 = time.perf_counter()
                await client.call("ping")
                times.append(time.perf_counter() - t0)
            await client.close()
        finally:
            proc.terminate()
            await proc.wait()
        out[label] = _summary(times)
    return out


async def bench_hotplug(
    mount: fakecams.FakeV4L2Mount, broker: Broker, workdir: str, count: int, cpus: list[int]
) -> dict[str, Any]:
    proc, port = await start_service(workdir, mount.dev_dir, broker.port, cpus)
    client = None
    try:
        async with Subscriber(broker.port, "camera-service/bench/#") as sub:
            online = sub.expect(lambda t, p: t.endswith("/availability") and p == b"online")
            await asyncio.wait_for(online, 20)
            client = await RpcClient.connect(f"ws://127.0.0.1:{port}/ws")
            await client.authenticate(mint_jwt(SECRET))
            notes = Notes(client)
            spec = fakecams.uvc_camera()
            await _plug_cycle(mount, sub, spec, 5, notes=notes)  # warm up
            service0, broker0 = _cpu(proc.pid), broker.cpu_seconds()
            times = await _plug_cycle(mount, sub, spec, count, notes=notes)
            service_cpu = _cpu(proc.pid) - service0
            broker_cpu = broker.cpu_seconds() - broker0
    finally:
        if client is not None:
            await client.close()
        proc.terminate()
        await proc.wait()
    changes = 2 * count
    mqtt_share = [m - w for m, w in zip(times["plug"], times["ws_plug"], strict=True)]
    return {
        "plug_to_retained_state": _summary(times["plug"]),
        "unplug_to_cleared_state": _summary(times["unplug"]),
        "plug_to_websocket_notification": _summary(times["ws_plug"]),
        "unplug_to_websocket_notification": _summary(times["ws_unplug"]),
        "plug_mqtt_minus_websocket": _summary(mqtt_share),
        "service_cpu_ms_per_change": round(service_cpu / changes * 1000, 3),
        "broker_cpu_ms_per_change": round(broker_cpu / changes * 1000, 3),
    }


# ---- fleet: many bridges in one process -----------------------------------------------------


async def fleet_child(port: int, dev_dir: str, boxes: int, state_dir: str) -> None:
    """Runs in a child process: one monitor, `boxes` bridges; prints "ready" once all are
    connected, stops when stdin closes."""
    from camera_service.cameras.monitor import CameraMonitor
    from camera_service.cameras.streams import StreamUrls
    from camera_service.config import load_config
    from camera_service.core.events import EventBus
    from camera_service.fleet.bridge import MqttBridge
    from camera_service.media.capture import CaptureManager
    from camera_service.methods.cameras import CameraApi

    bridges = []
    bus = EventBus()
    base = {
        "security": {"jwt_secret": SECRET, "state_dir": state_dir},
        "camera": {"device_dir": dev_dir},
        "logging": {"level": "warning"},
    }
    # An empty file of our own, so the default search (./conf/default.toml) plays no part.
    os.makedirs(state_dir, exist_ok=True)
    empty = os.path.join(state_dir, "empty.toml")
    Path(empty).write_text("")
    config = load_config(empty, env={}, overrides=base)
    monitor = CameraMonitor.from_config(config, bus=bus)
    await monitor.start()
    api = CameraApi(monitor, StreamUrls.from_config(config))
    captures = CaptureManager(bus, config.capture)
    for n in range(boxes):
        mqtt = {"enabled": True, "host": "127.0.0.1", "port": port, "node_id": f"box{n:03d}"}
        box_config = load_config(empty, env={}, overrides={**base, "mqtt": mqtt})
        bridge = MqttBridge(
            box_config, bus, monitor, api.entry, lambda name: None, captures, env={}
        )
        await bridge.start()
        bridges.append(bridge)
    while not all(b.connected and not b.pending for b in bridges):
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):
        # Each line asks how many messages the bridges have sent so far.
        print(sum(b.published for b in bridges), sum(b.pending for b in bridges), flush=True)
    for bridge in bridges:
        await bridge.stop()
    await monitor.stop()


async def bench_fleet(
    mount: fakecams.FakeV4L2Mount, broker: Broker, workdir: str, boxes: int, count: int
) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.bench_mqtt", "--fleet-child", str(broker.port),
        mount.dev_dir, str(boxes), f"{workdir}/fleet-var",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        assert line.strip() == b"ready", line

        async def published() -> tuple[int, int]:
            """(messages sent, messages waiting) over all bridges of the child."""
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(b"?\n")
            sent, pending = (await proc.stdout.readline()).split()
            return int(sent), int(pending)

        async def settle() -> None:
            # Every box sends everything for this change before the next one (discovery
            # configs and info would otherwise be replaced by the next change, unsent).
            while (await published())[1]:
                await asyncio.sleep(0.02)

        async with Subscriber(broker.port, "camera-service/+/cameras/camera1/state") as sub:
            spec = fakecams.uvc_camera()
            await _plug_cycle(mount, sub, spec, 2, boxes, settle=settle)  # warm up
            # What the idle connections cost (keepalive timers), to subtract below.
            idle0, idle_t0 = _cpu(proc.pid), time.perf_counter()
            await asyncio.sleep(3)
            idle_rate = (_cpu(proc.pid) - idle0) / (time.perf_counter() - idle_t0)
            t0 = time.perf_counter()
            bridges0, broker0 = _cpu(proc.pid), broker.cpu_seconds()
            sent0 = (await published())[0]
            times = await _plug_cycle(mount, sub, spec, count, boxes, settle=settle)
            bridges_cpu = _cpu(proc.pid) - bridges0 - idle_rate * (time.perf_counter() - t0)
            broker_cpu = broker.cpu_seconds() - broker0
            messages = (await published())[0] - sent0
    finally:
        proc.stdin.close()
        await proc.wait()
    changes = 2 * count * boxes  # every plug and unplug changes the state on every box
    return {
        "boxes": boxes,
        "state_changes": changes,
        "plug_to_last_box_state": _summary(times["plug"]),
        "unplug_to_last_box_cleared": _summary(times["unplug"]),
        "messages_per_state_change": round(messages / changes, 2),
        "bridges_idle_cpu_percent": round(idle_rate * 100, 2),
        "bridge_cpu_us_per_state_change": round(bridges_cpu / changes * 1e6, 1),
        "broker_cpu_us_per_state_change": round(broker_cpu / changes * 1e6, 1),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0))
    workdir = tempfile.mkdtemp(prefix="bench-mqtt-")
    broker = Broker(Path(workdir, "broker")).start()
    if len(cpus) >= 2:
        os.sched_setaffinity(broker.pid, set(cpus[1:]))
        os.sched_setaffinity(0, set(cpus[1:]))
    results: dict[str, Any] = {}
    try:
        with fakecams.FakeV4L2Mount.start() as mount:
            results["hotplug"] = await bench_hotplug(mount, broker, workdir, args.count, cpus)
            results["ping"] = await bench_ping(mount, broker, workdir, args.pings, cpus)
            results["fleet"] = await bench_fleet(
                mount, broker, workdir, args.boxes, args.fleet_count
            )
    finally:
        broker.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--fleet-child"]:
        port, dev_dir, boxes, state_dir = argv[1:5]
        asyncio.run(fleet_child(int(port), dev_dir, int(boxes), state_dir))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.bench_mqtt", description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="hot-plug cycles")
    parser.add_argument("--pings", type=int, default=5000, help="pings per bridge state")
    parser.add_argument("--boxes", type=int, default=100, help="bridges in the fleet run")
    parser.add_argument("--fleet-count", type=int, default=20, help="plug cycles, fleet run")
    args = parser.parse_args(argv)
    results = asyncio.run(main_async(args))
    print(json.dumps(results, indent=2))
    hot, fleet, ping = results["hotplug"], results["fleet"], results["ping"]
    print(f"\n{'scenario':<34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, row in (
        ("plug -> retained state", hot["plug_to_retained_state"]),
        ("unplug -> cleared state", hot["unplug_to_cleared_state"]),
        ("plug -> WebSocket notification", hot["plug_to_websocket_notification"]),
        ("unplug -> WebSocket notification", hot["unplug_to_websocket_notification"]),
        ("MQTT state minus WebSocket (plug)", hot["plug_mqtt_minus_websocket"]),
        (f"plug -> state of all {fleet['boxes']} boxes", fleet["plug_to_last_box_state"]),
        (f"unplug -> all {fleet['boxes']} cleared", fleet["unplug_to_last_box_cleared"]),
        *((f"ping, bridge {label}", row) for label, row in ping.items()),
    ):
        print(f"{label:<34} {row['p50_ms']:>8} {row['p99_ms']:>8} {row['max_ms']:>8}")
    print(
        f"\nhot-plug: service {hot['service_cpu_ms_per_change']} ms, broker "
        f"{hot['broker_cpu_ms_per_change']} ms CPU per change\n"
        f"fleet: bridges {fleet['bridge_cpu_us_per_state_change']} us, broker "
        f"{fleet['broker_cpu_us_per_state_change']} us CPU per state change "
        f"({fleet['messages_per_state_change']} messages each)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
