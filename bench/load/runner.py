"""Parent side of the load generator: worker processes, the measured window, the numbers.

`run_load(options, server_pid)` connects and authenticates every connection, runs a warm-up,
then measures a window during which it samples the server's /proc/PID/stat and /proc/PID/status
and the workers record latencies. Everything has a deadline; a worker that dies or hangs turns
into an error in the result instead of a stuck run.
"""

from __future__ import annotations

import array
import math
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Self

from bench.common import (
    CpuWindow,
    parse_ws_url,
    percentile,
    read_status,
)

MAX_CONNS = 60000
MAX_DURATION = 900.0


@dataclass
class LoadOptions:
    url: str
    token: str | None = None
    conns: int = 100
    procs: int = 1
    depth: int = 1
    mix: list[tuple[str, int]] = field(default_factory=lambda: [("ping", 1)])
    rate: float | None = None  # total req/s (open loop); None = closed loop
    duration: float = 5.0
    warmup: float = 1.0
    client_cpus: list[int] | None = None
    connect_concurrency: int = 64
    max_inflight: int = 64
    tick: float = 0.001
    handshake_timeout: float = 10.0
    call_timeout: float = 10.0
    drain_timeout: float = 2.0
    seed: int = 1
    probe: bool = True

    def validate(self) -> None:
        parse_ws_url(self.url)
        if not 1 <= self.conns <= MAX_CONNS:
            raise ValueError(f"--conns must be 1..{MAX_CONNS}")
        if not 1 <= self.procs <= 64 or self.procs > self.conns:
            raise ValueError("--procs must be 1..64 and at most --conns")
        if not 0 < self.duration <= MAX_DURATION or not 0 <= self.warmup <= 120:
            raise ValueError(f"--duration must be in (0, {MAX_DURATION}] s, --warmup in [0, 120] s")
        if not 1 <= self.depth <= 1000:
            raise ValueError("--depth must be 1..1000")
        if self.rate is not None and not 0 < self.rate <= 5_000_000:
            raise ValueError("--rate must be > 0 and <= 5e6 req/s")
        if not self.mix or any(w <= 0 for _, w in self.mix):
            raise ValueError("--mix needs at least one method with a positive weight")


def parse_mix(text: str) -> list[tuple[str, int]]:
    """ "ping:9,get_camera_list:1" -> [("ping", 9), ("get_camera_list", 1)]."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, weight = part.partition(":")
        out.append((name.strip(), int(weight) if weight else 1))
    g = 0
    for _, w in out:
        g = math.gcd(g, w)
    return [(name, w // g) for name, w in out] if g > 1 else out


class WorkerPool:
    """N load processes, each with its share of the connections."""

    def __init__(self, options: LoadOptions, max_life: float):
        options.validate()
        self.options = options
        ctx = multiprocessing.get_context("spawn")
        # One-way pipes: the worker's event loop watches the command pipe (libuv makes that fd
        # non-blocking), while results, which can be megabytes, go through a blocking one.
        self.pipes = []  # command writers
        self.results = []  # result readers
        self.procs = []
        base, extra = divmod(options.conns, options.procs)
        for index in range(options.procs):
            conns = base + (1 if index < extra else 0)
            cfg = {
                "url": options.url,
                "token": options.token,
                "conns": conns,
                "mix": [list(m) for m in options.mix],
                "cpus": options.client_cpus,
                "connect_concurrency": options.connect_concurrency,
                "connect_timeout": 30.0 + conns / 50.0,
                "handshake_timeout": options.handshake_timeout,
                "call_timeout": options.call_timeout,
                "seed": options.seed * 1000 + index,
                "probe": options.probe and index == 0,
                "max_life": max_life,
            }
            cmd_reader, cmd_writer = ctx.Pipe(duplex=False)
            res_reader, res_writer = ctx.Pipe(duplex=False)
            from bench.load import worker

            proc = ctx.Process(
                target=worker.main,
                args=(cmd_reader, res_writer, cfg),
                daemon=True,
                name=f"bench-load-{index}",
            )
            proc.start()
            cmd_reader.close()
            res_writer.close()
            self.pipes.append(cmd_writer)
            self.results.append(res_reader)
            self.procs.append(proc)
        self.ready: list[dict[str, Any]] = []

    def _recv(self, index: int, deadline: float, want: str) -> dict[str, Any]:
        pipe = self.results[index]
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not pipe.poll(left):
                raise TimeoutError(f"load worker {index} did not answer {want!r} in time")
            try:
                msg = pipe.recv()
            except (EOFError, OSError) as exc:
                raise RuntimeError(
                    f"load worker {index} went away ({exc!r}, exit code "
                    f"{self.procs[index].exitcode})"
                ) from None
            if msg.get("type") == "error":
                raise RuntimeError(
                    f"load worker {index} failed: {msg['error']}\n{msg.get('traceback', '')}"
                )
            if msg.get("type") == want:
                return msg

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        self.ready = [self._recv(i, deadline, "ready") for i in range(len(self.pipes))]
        return summarize_connect(self.ready)

    def ask(self, msg: dict[str, Any], want: str, timeout: float) -> list[dict[str, Any]]:
        for pipe in self.pipes:
            pipe.send(msg)
        deadline = time.monotonic() + timeout
        return [self._recv(i, deadline, want) for i in range(len(self.pipes))]

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send({"cmd": "close"})
            except (OSError, BrokenPipeError):
                pass
        deadline = time.monotonic() + 10.0
        for proc in self.procs:
            proc.join(max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)
        for pipe in self.pipes + self.results:
            pipe.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _floats(blob: bytes) -> array.array:
    a = array.array("d")
    a.frombytes(blob)
    return a


def latency_summary(values) -> dict[str, Any]:
    data = sorted(values)
    if not data:
        return {"count": 0}
    us = 1e6
    return {
        "count": len(data),
        "mean_us": sum(data) / len(data) * us,
        "p50_us": percentile(data, 50) * us,
        "p90_us": percentile(data, 90) * us,
        "p99_us": percentile(data, 99) * us,
        "p999_us": percentile(data, 99.9) * us,
        "max_us": data[-1] * us,
    }


def summarize_connect(ready: list[dict[str, Any]]) -> dict[str, Any]:
    connect, auth = array.array("d"), array.array("d")
    failures: dict[str, int] = {}
    for r in ready:
        connect.extend(_floats(r["connect_lat"]))
        auth.extend(_floats(r["auth_lat"]))
        for k, v in r["failures"].items():
            failures[k] = failures.get(k, 0) + v
    wall = max(r["t_end"] for r in ready) - min(r["t_begin"] for r in ready)
    connected = sum(r["connected"] for r in ready)
    out = {
        "wanted": sum(r["wanted"] for r in ready),
        "connected": connected,
        "failed": sum(r["failed"] for r in ready),
        "failures": failures,
        "establish_wall_s": wall,
        "connects_per_s": connected / wall if wall > 0 else None,
        "handshake": latency_summary(connect),
        "authenticate": latency_summary(auth),
    }
    probes = [r["probe"] for r in ready if r.get("probe")]
    if probes:
        out["probe"] = probes[0]
    return out


def unsupported_methods(probe: dict[str, str] | None) -> dict[str, str]:
    """Methods the server answered with -32601 (not implemented yet) or not at all."""
    out = {}
    for method, answer in (probe or {}).items():
        if '"code":-32601' in answer:
            out[method] = "the server answers -32601 Method not found"
        elif answer.startswith("<no answer"):
            out[method] = answer
    return out


def run_load(
    options: LoadOptions, server_pid: int | None = None, pool: WorkerPool | None = None
) -> dict[str, Any]:
    """Connect, warm up, measure. With `pool`, reuse connections that are already open."""
    options.validate()
    own_pool = pool is None
    max_life = options.warmup + options.duration + 120.0 + options.conns / 20.0
    if own_pool:
        pool = WorkerPool(options, max_life)
    try:
        if own_pool:
            connect = pool.wait_ready(60.0 + options.conns / 20.0)
        else:
            connect = summarize_connect(pool.ready)
        result: dict[str, Any] = {"options": _public(options), "connect": connect}
        missing = unsupported_methods(connect.get("probe"))
        if missing:
            result["skipped"] = "; ".join(f"{m}: {why}" for m, why in missing.items())
            return result
        if connect["connected"] == 0:
            result["skipped"] = f"no connection could be opened: {connect['failures']}"
            return result

        t_start = time.monotonic() + options.warmup + 0.05
        t_end = t_start + options.duration
        rate_each = None if options.rate is None else options.rate / len(pool.pipes)
        for pipe in pool.pipes:
            pipe.send(
                {
                    "cmd": "load",
                    "t_start": t_start,
                    "t_end": t_end,
                    "rate": rate_each,
                    "depth": options.depth,
                    "tick": options.tick,
                    "max_inflight": options.max_inflight,
                    "drain_timeout": options.drain_timeout,
                }
            )
        window = CpuWindow(server_pid) if server_pid else None
        status_before = read_status(server_pid) if server_pid else {}
        time.sleep(max(0.0, t_start - time.monotonic()))
        if window:
            window.start()
        time.sleep(max(0.0, t_end - time.monotonic()))
        if window:
            window.stop()
        deadline = time.monotonic() + options.drain_timeout + 30.0
        replies = [pool._recv(i, deadline, "load") for i in range(len(pool.pipes))]
        result.update(aggregate(options, replies, window, status_before))
        return result
    finally:
        if own_pool:
            pool.close()


def aggregate(
    options: LoadOptions,
    replies: list[dict[str, Any]],
    window: CpuWindow | None,
    status_before: dict[str, int],
) -> dict[str, Any]:
    names = [m for m, _ in options.mix]
    per_method: dict[str, Any] = {}
    everything = array.array("d")
    total_errors = 0
    for i, name in enumerate(names):
        lats = array.array("d")
        errors = 0
        for r in replies:
            lats.extend(_floats(r["lats"][i]))
            errors += r["errors"][i]
        everything.extend(lats)
        total_errors += errors
        per_method[name] = {"errors": errors, **latency_summary(lats)}
    walls = [r["window"][1] - r["window"][0] for r in replies]
    wall = sorted(walls)[len(walls) // 2]
    count = len(everything)
    client_user = sum(r["client_user_s"] for r in replies)
    client_sys = sum(r["client_sys_s"] for r in replies)
    lags = array.array("d")
    for r in replies:
        lags.extend(_floats(r["lags"]))
    out: dict[str, Any] = {
        "window_s": wall,
        "requests": count,
        "req_per_s": count / wall if wall > 0 else 0.0,
        "errors": total_errors,
        "latency": latency_summary(everything),
        "per_method": per_method,
        "unmatched": sum(r["unmatched"] for r in replies),
        "disconnects": sum(r["disconnects"] for r in replies),
        "skipped_sends": sum(r["skipped"] for r in replies),
        "unanswered_at_end": sum(r["unanswered_at_end"] for r in replies),
        "live_conns": sum(r["live_conns"] for r in replies),
        "client": {
            "procs": len(replies),
            "user_s": client_user,
            "sys_s": client_sys,
            "cpu_pct": 100.0 * (client_user + client_sys) / wall if wall > 0 else 0.0,
            "us_per_req": 1e6 * (client_user + client_sys) / count if count else None,
            "user_us_per_req": 1e6 * client_user / count if count else None,
            "sys_us_per_req": 1e6 * client_sys / count if count else None,
        },
    }
    if options.rate is not None:
        out["target_rate"] = options.rate
        out["send_lag"] = latency_summary(lags)
    if window is not None:
        w = window.result()
        out["server"] = {
            **w,
            "user_us_per_req": 1e6 * w["user_s"] / count if count else None,
            "sys_us_per_req": 1e6 * w["sys_s"] / count if count else None,
            "cpu_us_per_req": 1e6 * w["cpu_s"] / count if count else None,
            "rss_before_bytes": status_before.get("VmRSS"),
            "rss_hwm_bytes": window.st1.get("VmHWM"),
            "threads": window.st1.get("Threads"),
        }
        # CPU used by everything else on the machine during the window: other people's jobs.
        others = w["machine_busy_s"] - w["cpu_s"] - client_user - client_sys
        out["machine"] = {
            "others_cpu_pct": max(0.0, 100.0 * others / wall) if wall > 0 else None,
            "loadavg_1m": w["loadavg_1m"],
            "cpus": os.cpu_count(),
        }
    return out


def _public(options: LoadOptions) -> dict[str, Any]:
    d = asdict(options)
    d.pop("token", None)  # never written into reports
    d["mix"] = ",".join(f"{m}:{w}" for m, w in options.mix)
    return d


def cpu_count_note() -> str:
    return f"{os.cpu_count()} CPUs"
