"""Hot-plug notification latency: from the file creation on the FUSE mount to each client.

    python -m bench.bench_notifications --clients 1000 [--rounds 20] [--workers 2] [--json FILE]

What runs where (all on this machine, loopback only):
  * this process      mounts the FUSE fake cameras and does the plugs/unplugs with syscalls on
                      the mount (exactly what the tests and udev do);
  * 1 server process  camera_service.app.Application on its own event loop (uvloop when
                      installed, as `camera-service serve` uses), watching the mount;
  * W client processes each an event loop holding N/W picows connections, authenticated as
                      viewers; every notification frame is timestamped in the frame callback
                      (time.monotonic(), CLOCK_MONOTONIC, comparable across processes).

One round: t0 = monotonic() just before open(O_CREAT) of video0 on the mount; every client
records when its `camera_status_update` CONNECTED arrived; then the same for the unlink
(DISCONNECTED). The plug path includes the server's probe (open + ~30 ioctls through FUSE);
the unplug path is inotify -> registry -> fan-out only. Per round we keep the first, the
median and the LAST client's latency; the report gives p50 / p99 / max of those over the rounds
(nearest-rank percentiles: with 20 rounds, p99 is the largest of the 20 samples, the max).

Bounded in time: every wait has a deadline (--timeout for the whole run), and every child
process is terminated in `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import traceback
from typing import Any

SECRET = "bench-notifications-secret-0123456789abcdef0123"
NOTE_PREFIX = b'{"jsonrpc":"2.0","method":"camera_status_update"'


def raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def use_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


# ---- server process ------------------------------------------------------------------------


def server_main(conn, dev_dir: str, state_dir: str, max_connections: int) -> None:
    raise_nofile(max_connections + 512)
    uvloop_used = use_uvloop()
    import logging

    logging.basicConfig(level=logging.ERROR)
    from camera_service.app import Application
    from camera_service.config import load_config

    empty = os.path.join(state_dir, "empty.toml")
    with open(empty, "w"):
        pass
    config = load_config(
        empty,
        env={},
        overrides={
            "server": {
                "host": "127.0.0.1",
                "port": 0,
                "max_connections": max_connections,
                "shutdown_timeout": 1.0,
            },
            "security": {
                "jwt_secret": SECRET,
                "state_dir": state_dir,
                "rate_limit_rpm": 0,
                "rate_limit_burst": 0,
            },
            "camera": {"device_dir": dev_dir},
            "logging": {"level": "error"},
        },
    )

    async def main() -> None:
        app = Application(config, env={})
        await app.start()
        await app.monitor.wait_ready(10)
        conn.send(("ready", app.port, uvloop_used))
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_reader(conn.fileno(), stop.set)  # any message (or EOF) means stop
        await stop.wait()
        await app.stop()

    asyncio.run(main())


# ---- client worker processes ---------------------------------------------------------------


def worker_main(conn, url: str, count: int, token: str, connect_timeout: float) -> None:
    raise_nofile(count + 256)
    use_uvloop()
    from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

    arrivals: list[list[tuple[float, bytes]]] = [[] for _ in range(count)]
    monotonic = time.monotonic

    class Listener(WSListener):
        def __init__(self, index: int) -> None:
            self.index = index
            self.reply: asyncio.Future | None = None

        def on_ws_frame(self, transport, frame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                data = frame.get_payload_as_bytes()
                if data.startswith(NOTE_PREFIX):
                    status = b"C" if b'"status":"CONNECTED"' in data else b"D"
                    arrivals[self.index].append((monotonic(), status))
                elif self.reply is not None and not self.reply.done():
                    self.reply.set_result(data)
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.disconnect()

    transports: list[Any] = []

    async def open_one(index: int, gate: asyncio.Semaphore) -> None:
        async with gate:
            transport, listener = await ws_connect(
                lambda: Listener(index), url, websocket_handshake_timeout=connect_timeout
            )
            transports.append(transport)
            listener.reply = asyncio.get_running_loop().create_future()
            transport.send(
                WSMsgType.TEXT,
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "method": "authenticate",
                        "id": 1,
                        "params": {"auth_token": token},
                    }
                ).encode(),
            )
            reply = await asyncio.wait_for(listener.reply, connect_timeout)
            if b'"authenticated":true' not in reply:
                raise RuntimeError(f"authenticate failed: {reply[:200]!r}")

    async def wait_for(k: int, timeout: float) -> list[tuple[float, bytes] | None]:
        deadline = monotonic() + timeout
        while monotonic() < deadline and any(len(a) < k for a in arrivals):
            await asyncio.sleep(0.002)
        return [a[k - 1] if len(a) >= k else None for a in arrivals]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(64)
        try:
            await asyncio.gather(*(open_one(i, gate) for i in range(count)))
        except Exception as exc:
            conn.send(("error", f"connect: {exc!r}"))
            return
        conn.send(("connected", len(transports)))
        commands: asyncio.Queue = asyncio.Queue()
        loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
        while True:
            command = await commands.get()
            if command[0] == "wait":
                conn.send(("arrivals", await wait_for(command[1], command[2])))
            elif command[0] == "extra":
                # Notifications beyond what was expected (duplicates would show up here).
                conn.send(("extra", sum(max(0, len(a) - command[1]) for a in arrivals)))
            else:
                break
        loop.remove_reader(conn.fileno())
        for transport in transports:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()

    try:
        asyncio.run(main())
    except Exception:
        conn.send(("error", traceback.format_exc()))


# ---- the run -------------------------------------------------------------------------------


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(nearest_rank(samples, 0.50) * 1000, 2),
        "p99_ms": round(nearest_rank(samples, 0.99) * 1000, 2),
        "max_ms": round(max(samples) * 1000, 2),
    }


def recv(conn, deadline: float, what: str):
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not conn.poll(remaining):
        raise TimeoutError(f"no answer from a child process while waiting for {what}")
    message = conn.recv()
    if message[0] == "error":
        raise RuntimeError(f"child failed during {what}: {message[1]}")
    return message


def run(args: argparse.Namespace) -> dict[str, Any]:
    import jwt

    from camera_service.devices.v4l2 import probe
    from camera_service.testing.fakecams import FakeV4L2Mount, uvc_camera

    started = time.monotonic()
    deadline = started + args.timeout
    raise_nofile(args.clients + 512)
    ctx = mp.get_context("spawn")
    procs: list[Any] = []
    pipes: list[Any] = []
    mount = FakeV4L2Mount.start()
    state_dir = tempfile.mkdtemp(prefix="bench-notes-")
    try:
        server_pipe, child = ctx.Pipe()
        server = ctx.Process(
            target=server_main,
            name="server",
            args=(child, mount.dev_dir, state_dir, args.clients + 16),
        )
        server.start()
        procs.append(server)
        _, port, uvloop_used = recv(server_pipe, deadline, "the server to start")
        url = f"ws://127.0.0.1:{port}/ws"
        now = int(time.time())
        token = jwt.encode(
            {"user_id": "bench", "role": "viewer", "iat": now, "exp": now + 3600},
            SECRET,
            algorithm="HS256",
        )

        workers = max(1, min(args.workers, args.clients))
        shares = [
            args.clients // workers + (1 if i < args.clients % workers else 0)
            for i in range(workers)
        ]
        for i, share in enumerate(shares):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker_main,
                name=f"clients-{i}",
                args=(child, url, share, token, args.connect_timeout),
            )
            proc.start()
            procs.append(proc)
            pipes.append(parent)
        connected = sum(recv(p, deadline, "clients to connect")[1] for p in pipes)
        connect_s = time.monotonic() - started

        spec = uvc_camera(card="Bench Camera")
        results: dict[str, dict[str, list[float]]] = {
            kind: {"first": [], "median": [], "last": []} for kind in ("plug", "unplug")
        }
        missing = 0
        expected_notes = 0
        for _ in range(args.rounds):
            for kind in ("plug", "unplug"):
                if kind == "plug":
                    mount.register("video0", spec)  # control socket: no fs event
                    t0 = time.monotonic()
                    fd = os.open(mount.path("video0"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                    os.close(fd)
                    os.chmod(mount.path("video0"), 0o666)
                else:
                    t0 = time.monotonic()
                    os.unlink(mount.path("video0"))
                expected_notes += 1
                want = b"C" if kind == "plug" else b"D"
                wait = min(args.event_timeout, max(0.1, deadline - time.monotonic()))
                for p in pipes:
                    p.send(("wait", expected_notes, wait))
                arrivals = []
                for p in pipes:
                    arrivals.extend(recv(p, deadline + 5, f"{kind} notifications")[1])
                got = [a[0] - t0 for a in arrivals if a is not None and a[1] == want]
                missing += len(arrivals) - len(got)
                if not got:
                    raise RuntimeError(f"no client received the {kind} notification")
                results[kind]["first"].append(min(got))
                results[kind]["median"].append(statistics.median(got))
                results[kind]["last"].append(max(got))
                if time.monotonic() > deadline:
                    raise TimeoutError("--timeout reached")
        time.sleep(0.2)
        extra = 0
        for p in pipes:
            p.send(("extra", expected_notes))
        for p in pipes:
            extra += recv(p, deadline + 5, "the duplicate count")[1]

        # The probe alone, from this process, through the same mount: the floor of the plug path.
        mount.add("video0", spec)
        probe_s = []
        for _ in range(args.rounds):
            t = time.monotonic()
            probe(mount.path("video0"))
            probe_s.append(time.monotonic() - t)
        mount.remove("video0")

        return {
            "clients": args.clients,
            "connected": connected,
            "client_processes": workers,
            "rounds": args.rounds,
            "server_loop": "uvloop" if uvloop_used else "asyncio",
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "connect_and_auth_s": round(connect_s, 2),
            "missing_notifications": missing,
            "extra_notifications": extra,
            "plug_last_client": summarize(results["plug"]["last"]),
            "plug_median_client": summarize(results["plug"]["median"]),
            "plug_first_client": summarize(results["plug"]["first"]),
            "unplug_last_client": summarize(results["unplug"]["last"]),
            "unplug_median_client": summarize(results["unplug"]["median"]),
            "unplug_first_client": summarize(results["unplug"]["first"]),
            "probe_alone": summarize(probe_s),
            "total_s": round(time.monotonic() - started, 2),
        }
    finally:
        for p in pipes:
            try:
                p.send(("close",))
            except OSError:
                pass
        try:
            server_pipe.send(("stop",))
        except (OSError, NameError):
            pass
        for proc in procs:
            proc.join(3)
            if proc.is_alive():
                proc.terminate()
                proc.join(2)
            if proc.is_alive():
                proc.kill()
        mount.close()
        import shutil

        shutil.rmtree(state_dir, ignore_errors=True)


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\n{result['connected']}/{result['clients']} clients in "
        f"{result['client_processes']} processes, {result['rounds']} rounds, server on "
        f"{result['server_loop']}, {result['cpus']} CPUs; missing "
        f"{result['missing_notifications']}, extra {result['extra_notifications']}"
    )
    print(
        f"{'latency from the syscall on the mount':<40} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}"
    )
    for key in (
        "plug_last_client",
        "plug_median_client",
        "plug_first_client",
        "unplug_last_client",
        "unplug_median_client",
        "unplug_first_client",
        "probe_alone",
    ):
        row = result[key]
        print(
            f"{key.replace('_', ' '):<40} {row['p50_ms']:>9} {row['p99_ms']:>9} {row['max_ms']:>9}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--workers",
        type=int,
        default=max(1, min(4, (os.cpu_count() or 2))),
        help="client processes (default: CPUs, at most 4)",
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="bound for the whole run, s")
    parser.add_argument(
        "--event-timeout",
        type=float,
        default=10.0,
        help="how long to wait for one notification at every client, s",
    )
    parser.add_argument("--connect-timeout", type=float, default=20.0)
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.rounds < 1:
        parser.error("--clients and --rounds must be >= 1")
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
