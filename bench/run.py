"""python -m bench.run: every benchmark scenario in one command, one row each.

    python -m bench.run                 # full suite, medians of --repeat 3 (< 10 minutes)
    python -m bench.run --quick         # smoke version (< 1 minute)
    python -m bench.run --only ping100 --repeat 3   # ours vs both baselines, ping at 100 conns

Every scenario starts a fresh server with a generated config (rate limiter off, connection
limit above the scenario's need), pins the server and the load generator to separate CPUs when
the machine has two or more, and is bounded in time. Results go to bench/results/latest.json
(and --markdown FILE for the README table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    CpuWindow,
    loadavg,
    median_of,
    mint_jwt,
    parse_cpus,
    percentile,
    raise_nofile,
    read_status,
)
from bench.load.__main__ import cpu_ratios
from bench.load.harness import load_once
from bench.load.rawws import StampedClients
from bench.load.report import COLUMNS, flat, fmt, markdown_table, medians, table
from bench.load.runner import LoadOptions, WorkerPool
from bench.servers import FakeCameras, ServerProcess

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


@dataclass
class Settings:
    quick: bool
    repeat: int
    duration: float
    warmup: float
    idle_seconds: float
    servers: list[str]
    server_cpus: set[int] | None
    client_cpus: set[int] | None
    rss_conns: list[int]
    fanout_conns: int
    open_duration: float


@dataclass
class Row:
    scenario: str
    label: str
    kind: str = "ours"
    metrics: dict[str, Any] = field(default_factory=dict)  # medians
    runs: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""
    skipped: str | None = None
    throughput: bool = False


class Suite:
    def __init__(self, settings: Settings, fake: FakeCameras, log: Callable[[str], None]):
        self.s = settings
        self.fake = fake
        self.log = log
        self.rows: list[Row] = []

    # -- helpers --

    def template(self, conns: int, mix: list[tuple[str, int]], **kw: Any) -> LoadOptions:
        return LoadOptions(
            url="ws://127.0.0.1:1/ws",
            conns=conns,
            mix=mix,
            duration=kw.pop("duration", self.s.duration),
            warmup=kw.pop("warmup", self.s.warmup),
            client_cpus=sorted(self.s.client_cpus) if self.s.client_cpus else None,
            **kw,
        )

    def server(
        self, kind: str = "ours", max_connections: int = 2000, nofile: int | None = None
    ) -> ServerProcess:
        return ServerProcess.start(
            kind,
            device_dir=self.fake.dev_dir,
            cpus=self.s.server_cpus,
            max_connections=max_connections,
            nofile=nofile or max_connections + 1024,
        )

    def hold_pool(
        self,
        server: ServerProcess,
        conns: int,
        procs: int = 1,
        life: float = 300.0,
        concurrency: int = 64,
    ) -> tuple[WorkerPool, dict[str, Any]]:
        options = LoadOptions(
            url=server.url,
            token=mint_jwt(server.secret),
            conns=conns,
            procs=procs,
            client_cpus=sorted(self.s.client_cpus) if self.s.client_cpus else None,
            connect_concurrency=concurrency,
            probe=False,
        )
        pool = WorkerPool(options, max_life=life)
        try:
            connect = pool.wait_ready(60.0 + conns / 20.0)
        except BaseException:
            pool.close()
            raise
        return pool, connect

    # -- closed and open loop rows --

    def load_rows(
        self,
        scenario: str,
        title: str,
        conns: int,
        mix: list[tuple[str, int]],
        kinds: list[str],
        **kw: Any,
    ) -> None:
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
        for rep in range(self.s.repeat):
            for kind in kinds:
                try:
                    result = load_once(
                        kind,
                        self.template(conns, mix, **kw),
                        fake=self.fake,
                        server_cpus=self.s.server_cpus,
                    )
                except Exception as exc:  # noqa: BLE001 - one failed run must not end the suite
                    result = {"skipped": f"failed: {type(exc).__name__}: {exc}"}
                    self.log(traceback.format_exc())
                runs[kind].append(result)
                if result.get("skipped"):
                    self.log(f"  {scenario} {kind} #{rep + 1}: skipped: {result['skipped']}")
                else:
                    f = flat(result)
                    self.log(
                        f"  {scenario} {kind} #{rep + 1}: {f['req_per_s']:,.0f} req/s, "
                        f"p99 {f['p99_us']:,.0f} us, server {f['srv_cpu_us'] or 0:.2f} us/req "
                        f"(user {f['srv_user_us'] or 0:.2f}), client {f['cli_cpu_pct'] or 0:.0f}% CPU, "
                        f"others {f['others_cpu_pct'] or 0:.0f}% CPU"
                    )
                if result.get("skipped") and kind == "ours" and "-32601" in result["skipped"]:
                    break
        summary = {k: medians(rs) for k, rs in runs.items()}
        ratios = cpu_ratios(summary)["values"]
        for kind in kinds:
            done = [r for r in runs[kind] if not r.get("skipped")]
            row = Row(
                scenario, f"{title} [{kind}]", kind, summary[kind], runs[kind], throughput=True
            )
            if not done:
                row.skipped = runs[kind][0].get("skipped") if runs[kind] else "not run"
            elif kind in ratios:
                row.summary = f"CPU/request {ratios[kind]:.2f}x ours"
            self.rows.append(row)

    # -- memory and connections --

    def rss(self) -> None:
        for conns in self.s.rss_conns:
            procs = max(1, -(-conns // 2500))
            with self.server(max_connections=conns + 2000, nofile=conns + 4096) as server:
                time.sleep(1.0)
                idle_status = read_status(server.pid)
                idle = idle_status["VmRSS"]
                if conns == self.s.rss_conns[0]:
                    anon, files = idle_status.get("RssAnon", 0), idle_status.get("RssFile", 0)
                    self.rows.append(
                        Row(
                            "rss_idle",
                            "idle RSS (4 cameras, no clients)",
                            metrics={
                                "rss_mb": idle / 2**20,
                                "rss_anon_mb": anon / 2**20,
                                "rss_file_mb": files / 2**20,
                            },
                            summary=(
                                f"{idle / 2**20:.1f} MB: {anon / 2**20:.1f} MB anonymous + "
                                f"{files / 2**20:.1f} MB file-backed (mapped code, shareable)"
                                " (target <= 25 MB)"
                            ),
                        )
                    )
                pool, connect = self.hold_pool(server, conns, procs=procs, concurrency=128)
                try:
                    time.sleep(1.0)
                    status = read_status(server.pid)
                    still_open = sum(r["open"] for r in pool.ask({"cmd": "count"}, "count", 30.0))
                finally:
                    pool.close()
                alive = server.alive()
            connected = connect["connected"]
            per_conn = (status["VmRSS"] - idle) / connected if connected else None
            m = {
                "rss_mb": status["VmRSS"] / 2**20,
                "rss_idle_mb": idle / 2**20,
                "connected": connected,
                "still_open": still_open,
                "per_conn_kb": per_conn / 1024 if per_conn else None,
                "establish_s": connect["establish_wall_s"],
                "failed": connect["failed"],
                "server_alive": alive,
            }
            text = (
                f"{connected}/{conns} authenticated, {still_open} still open after 1 s; RSS "
                f"{m['rss_mb']:.1f} MB (idle {m['rss_idle_mb']:.1f}), "
                f"{fmt(m['per_conn_kb'], '{:.1f}')} kB per connection (target <= 8 kB)"
            )
            if connect["failures"]:
                text += f"; failures: {connect['failures']}"
            self.rows.append(
                Row(
                    f"rss{conns}",
                    f"RSS with {conns:,} idle authenticated connections",
                    metrics=m,
                    summary=text,
                )
            )

    def connect_time(self, conns: int = 1000) -> None:
        runs = []
        for _ in range(self.s.repeat):
            with self.server(max_connections=conns + 500) as server:
                pool, connect = self.hold_pool(server, conns)
                pool.close()
            runs.append(
                {
                    "establish_s": connect["establish_wall_s"],
                    "handshake_p50_ms": connect["handshake"].get("p50_us", 0) / 1e3,
                    "handshake_p99_ms": connect["handshake"].get("p99_us", 0) / 1e3,
                    "auth_p50_ms": connect["authenticate"].get("p50_us", 0) / 1e3,
                    "auth_p99_ms": connect["authenticate"].get("p99_us", 0) / 1e3,
                    "connected": connect["connected"],
                    "failures": connect["failures"],
                }
            )
        m = {k: median_of([r[k] for r in runs]) for k in runs[0] if k != "failures"}
        self.rows.append(
            Row(
                "connect1000",
                f"establish {conns:,} connections (64 at a time)",
                metrics=m,
                runs=runs,
                summary=(
                    f"{m['connected']:.0f} connected + authenticated in {m['establish_s']:.2f} s; "
                    f"TCP+upgrade p50 {m['handshake_p50_ms']:.2f} ms p99 {m['handshake_p99_ms']:.2f} ms; "
                    f"authenticate p50 {m['auth_p50_ms']:.2f} ms p99 {m['auth_p99_ms']:.2f} ms"
                ),
            )
        )

    # -- notifications --
    # Raw clients with kernel receive timestamps (bench/load/rawws.py): the times are when the
    # server's write reached each client socket, not when a busy client got round to reading.

    def _need_fake(self, scenario: str, label: str) -> bool:
        if self.fake.available:
            return True
        self.rows.append(
            Row(scenario, label, skipped=f"needs the FUSE fake cameras: {self.fake.reason}")
        )
        return False

    def fanout(self) -> None:
        conns = self.s.fanout_conns
        label = f"notification fan-out to {conns:,} clients (camera plug)"
        scenario = f"fanout{conns}"
        if not self._need_fake(scenario, label):
            return
        cycles = max(1, min(self.s.repeat, 5))
        runs = []
        with (
            self.server(max_connections=conns + 500, nofile=conns + 2048) as server,
            StampedClients(server.url, mint_jwt(server.secret), conns) as clients,
        ):
            connected = len(clients.clients)
            for i in range(cycles):
                n = 40 + i
                wall0 = time.time()
                self.fake.plug(n)
                got = clients.wait_for(f"video{n}".encode(), b'"CONNECTED"', 10.0)
                self.fake.unplug(n)
                clients.wait_for(f"video{n}".encode(), b'"DISCONNECTED"', 5.0)
                if not got:
                    runs.append({"received": 0})
                    continue
                stamps = sorted(got.values())
                lat = [(t - wall0) * 1e3 for t in stamps]
                fan = [(t - stamps[0]) * 1e3 for t in stamps]
                runs.append(
                    {
                        "received": len(stamps),
                        "first_ms": lat[0],
                        "p99_ms": percentile(lat, 99),
                        "last_ms": lat[-1],
                        "fan_p50_ms": percentile(fan, 50),
                        "fan_p99_ms": percentile(fan, 99),
                        "fan_last_ms": fan[-1],
                        "per_client_us": 1e3 * fan[-1] / max(1, len(fan) - 1),
                    }
                )
        ok = [r for r in runs if r.get("received")]
        if not ok:
            self.rows.append(
                Row(
                    scenario,
                    label,
                    runs=runs,
                    skipped=(
                        f"no camera_status_update arrived within 10 s of a plug ({connected} clients "
                        "connected): is the camera monitor running against camera.device_dir?"
                    ),
                )
            )
            return
        m = {k: median_of([r[k] for r in ok]) for k in ok[0]}
        m["fan_last_max_ms"] = max(r["fan_last_ms"] for r in ok)
        self.rows.append(
            Row(
                scenario,
                label,
                metrics=m,
                runs=runs,
                summary=(
                    f"{m['received']:.0f}/{conns} clients notified. Fan-out, from the first client's copy "
                    f"(kernel receive timestamps): p50 {m['fan_p50_ms']:.1f} ms, p99 {m['fan_p99_ms']:.1f} ms, "
                    f"last client {m['fan_last_ms']:.1f} ms ({m['per_client_us']:.1f} us per client; worst plug "
                    f"{m['fan_last_max_ms']:.1f} ms). From the plug syscall (adds inotify + FUSE probe): first "
                    f"{m['first_ms']:.1f} ms, last {m['last_ms']:.1f} ms [median of {len(ok)} plugs]"
                ),
            )
        )

    def hotplug(self) -> None:
        label = "hot-plug latency (plug/unplug -> notification, 1 client)"
        if not self._need_fake("hotplug", label):
            return
        cycles = 2 if self.s.quick else 5
        plug, unplug = [], []
        with (
            self.server() as server,
            StampedClients(server.url, mint_jwt(server.secret), 1) as clients,
        ):
            for i in range(cycles):
                n = 60 + i
                wall0 = time.time()
                self.fake.plug(n)
                got = clients.wait_for(f"video{n}".encode(), b'"CONNECTED"', 5.0)
                if got:
                    plug.append((min(got.values()) - wall0) * 1e3)
                time.sleep(0.05)
                wall1 = time.time()
                self.fake.unplug(n)
                got = clients.wait_for(f"video{n}".encode(), b'"DISCONNECTED"', 5.0)
                if got:
                    unplug.append((min(got.values()) - wall1) * 1e3)
                time.sleep(0.05)
        if not plug and not unplug:
            self.rows.append(
                Row("hotplug", label, skipped="no camera_status_update within 5 s of a plug")
            )
            return
        m = {
            "plug_p50_ms": median_of(plug),
            "plug_max_ms": max(plug) if plug else None,
            "unplug_p50_ms": median_of(unplug),
            "unplug_max_ms": max(unplug) if unplug else None,
            "cycles": cycles,
            "plug_seen": len(plug),
            "unplug_seen": len(unplug),
        }
        self.rows.append(
            Row(
                "hotplug",
                label,
                metrics=m,
                summary=(
                    f"plug -> CONNECTED median {fmt(m['plug_p50_ms'], '{:.1f}')} ms (max "
                    f"{fmt(m['plug_max_ms'], '{:.1f}')}), unplug -> DISCONNECTED median "
                    f"{fmt(m['unplug_p50_ms'], '{:.1f}')} ms (max {fmt(m['unplug_max_ms'], '{:.1f}')}); "
                    f"{len(plug)}/{cycles} plugs and {len(unplug)}/{cycles} unplugs seen; includes the FUSE "
                    "fake's own ioctl answers"
                ),
            )
        )

    # -- idle --

    def idle(self) -> None:
        with self.server() as server:
            pool, connect = self.hold_pool(server, 100, life=self.s.idle_seconds + 120)
            try:
                time.sleep(1.0)
                window = CpuWindow(server.pid)
                window.start()
                time.sleep(self.s.idle_seconds)
                window.stop()
            finally:
                pool.close()
        w = window.result()
        m = {
            "window_s": w["wall_s"],
            "cpu_ms": w["cpu_s"] * 1e3,
            "user_ms": w["user_s"] * 1e3,
            "sys_ms": w["sys_s"] * 1e3,
            "voluntary_ctxt_switches": w["voluntary_ctxt_switches"],
            "nonvoluntary_ctxt_switches": w["nonvoluntary_ctxt_switches"],
            "wakeups_per_s": w["voluntary_ctxt_switches"] / w["wall_s"],
            "rss_mb": w["rss_bytes"] / 2**20,
            "connected": connect["connected"],
        }
        self.rows.append(
            Row(
                "idle",
                f"idle server, 4 cameras + {connect['connected']} idle clients, "
                f"{self.s.idle_seconds:g} s",
                metrics=m,
                summary=(
                    f"CPU {m['cpu_ms']:.0f} ms in {m['window_s']:.0f} s (user {m['user_ms']:.0f}, sys "
                    f"{m['sys_ms']:.0f}); {m['voluntary_ctxt_switches']} voluntary / "
                    f"{m['nonvoluntary_ctxt_switches']} involuntary context switches "
                    f"({m['wakeups_per_s']:.1f} wake-ups/s)"
                ),
            )
        )


SCENARIOS = [
    "ping1",
    "ping100",
    "ping1000",
    "gcl100",
    "open1000",
    "rss",
    "connect1000",
    "fanout",
    "hotplug",
    "idle",
]


def run_suite(s: Settings, only: list[str], log: Callable[[str], None]) -> list[Row]:
    fake = FakeCameras(4).start()
    if fake.reason:
        log(f"note: {fake.reason}; scenarios that need cameras will be skipped")
    suite = Suite(s, fake, log)
    ping, gcl = [("ping", 1)], [("get_camera_list", 1)]
    baselines = [k for k in s.servers if k != "ours"]
    plan: list[tuple[str, Callable[[], None]]] = [
        ("ping1", lambda: suite.load_rows("ping1", "ping, 1 connection", 1, ping, ["ours"])),
        (
            "ping100",
            lambda: suite.load_rows(
                "ping100", "ping, 100 connections", 100, ping, ["ours", *baselines]
            ),
        ),
        (
            "ping1000",
            lambda: suite.load_rows("ping1000", "ping, 1000 connections", 1000, ping, ["ours"]),
        ),
        (
            "gcl100",
            lambda: suite.load_rows(
                "gcl100",
                "get_camera_list (4 cameras), 100 connections",
                100,
                gcl,
                ["ours", *([] if s.quick else baselines)],
            ),
        ),
        (
            "open1000",
            lambda: suite.load_rows(
                "open1000",
                "open loop 1000 conns x 10 req/s, ping",
                1000,
                ping,
                ["ours"],
                rate=10000.0,
                duration=s.open_duration,
            ),
        ),
        ("rss", suite.rss),
        ("connect1000", suite.connect_time),
        ("fanout", suite.fanout),
        ("hotplug", suite.hotplug),
        ("idle", suite.idle),
    ]
    try:
        for name, step in plan:
            if only and name not in only:
                continue
            log(f"== {name}")
            t0 = time.monotonic()
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - reported as a skipped row
                log(traceback.format_exc())
                suite.rows.append(Row(name, name, skipped=f"failed: {type(exc).__name__}: {exc}"))
            log(f"   ({time.monotonic() - t0:.0f} s)")
    finally:
        fake.close()
    return suite.rows


TARGETS = [
    # (row scenario, kind, metric, op, limit, text)
    ("ping100", "ours", "srv_cpu_us", "<=", 5.5, "ping @100 conns CPU/request <= 5.5 us"),
    ("ping100", "ours", "srv_user_us", "<=", 1.1, "ping @100 conns user CPU/request <= 1.1 us"),
    ("ping1000", "ours", "srv_cpu_us", "<=", 6.0, "ping @1000 conns CPU/request <= 6.0 us"),
    ("gcl100", "ours", "srv_cpu_us", "<=", 6.0, "get_camera_list @100 conns CPU/request <= 6.0 us"),
    ("rss_idle", "ours", "rss_mb", "<=", 25.0, "idle RSS <= 25 MB"),
    ("rss1000", "ours", "per_conn_kb", "<=", 8.0, "RSS per idle connection <= 8 kB (1,000)"),
    ("rss10000", "ours", "per_conn_kb", "<=", 8.0, "RSS per idle connection <= 8 kB (10,000)"),
    ("rss10000", "ours", "still_open", ">=", 10000, "10,000 connections held"),
    ("open1000", "ours", "p99_us", "<", 1000.0, "open loop 1000 x 10 req/s p99 < 1 ms"),
    (
        "fanout1000",
        "ours",
        "fan_p99_ms",
        "<",
        10.0,
        "notification fan-out to 1000 clients p99 < 10 ms",
    ),
    (
        "fanout1000",
        "ours",
        "fan_last_ms",
        "<",
        10.0,
        "notification fan-out: last of 1000 clients < 10 ms",
    ),
]


def check_targets(rows: list[Row]) -> list[tuple[str, str, str]]:
    out = []
    for scenario, kind, metric, op, limit, text in TARGETS:
        row = next((r for r in rows if r.scenario == scenario and r.kind == kind), None)
        value = None if row is None or row.skipped else row.metrics.get(metric)
        if value is None:
            out.append((text, "-", "not measured"))
            continue
        ok = value <= limit if op == "<=" else value < limit if op == "<" else value >= limit
        out.append((text, f"{value:,.2f}", "PASS" if ok else "MISS"))
    return out


def _one_line(text: str) -> str:
    """A skip reason for the report: its first line and, if different, its last line."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    return f"{lines[0]} ... {lines[-1]}"


def render(rows: list[Row], markdown: bool = False) -> str:
    load = [(r.label, r.metrics) for r in rows if r.throughput and not r.skipped]
    parts = []
    if load:
        parts.append(
            markdown_table(load, COLUMNS, "scenario")
            if markdown
            else table(load, COLUMNS, "scenario")
        )
        parts.append("")
    for r in rows:
        if r.skipped:
            parts.append(f"{'- ' if markdown else ''}{r.label}: SKIPPED: {_one_line(r.skipped)}")
        elif not r.throughput or r.summary:
            parts.append(f"{'- ' if markdown else ''}{r.label}: {r.summary}")
    parts.append("")
    checks = check_targets(rows)
    if markdown:
        parts.append("| target | measured | |\n|---|---|---|")
        parts.extend(f"| {t} | {v} | {s} |" for t, v, s in checks)
    else:
        width = max(len(t) for t, _, _ in checks)
        parts.extend(f"{t.ljust(width)}  {v:>10}  {s}" for t, v, s in checks)
    return "\n".join(parts)


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), ""
            )
    except OSError:
        pass
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": loadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smoke version, under a minute")
    p.add_argument(
        "--repeat", type=int, help="runs per load scenario; medians reported (default 3, quick 1)"
    )
    p.add_argument(
        "--duration", type=float, help="measured seconds per load run (default 5, quick 1)"
    )
    p.add_argument(
        "--warmup", type=float, help="warm-up seconds per load run (default 1, quick 0.3)"
    )
    p.add_argument("--idle-seconds", type=float, help="idle CPU window (default 60, quick 3)")
    p.add_argument("--only", help=f"comma-separated scenarios: {','.join(SCENARIOS)}")
    p.add_argument(
        "--servers",
        default="ours,naive,websockets",
        help="servers for the comparison rows (default ours,naive,websockets)",
    )
    p.add_argument("--server-cpu", help="CPUs for the server (default 0 when there are >= 2 CPUs)")
    p.add_argument("--client-cpu", help="CPUs for the load generator (default: the others)")
    p.add_argument("--no-pin", action="store_true", help="do not pin anything")
    p.add_argument(
        "--json", default=os.path.join(RESULTS_DIR, "latest.json"), help="JSON output file"
    )
    p.add_argument("--markdown", help="also write the report as Markdown to this file")
    args = p.parse_args(argv)

    only = [x.strip() for x in (args.only or "").split(",") if x.strip()]
    unknown = [x for x in only if x not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; choose from {SCENARIOS}")
    quick = args.quick
    server_cpus = client_cpus = None
    if not args.no_pin:
        cpus = sorted(os.sched_getaffinity(0))
        server_cpus = (
            parse_cpus(args.server_cpu)
            if args.server_cpu
            else ({cpus[0]} if len(cpus) >= 2 else None)
        )
        client_cpus = (
            parse_cpus(args.client_cpu)
            if args.client_cpu
            else (set(cpus) - server_cpus if server_cpus and len(cpus) >= 2 else None)
        )
    s = Settings(
        quick=quick,
        repeat=max(1, min(args.repeat or (1 if quick else 3), 20)),
        duration=args.duration or (1.0 if quick else 5.0),
        warmup=args.warmup if args.warmup is not None else (0.3 if quick else 1.0),
        idle_seconds=min(args.idle_seconds or (3.0 if quick else 60.0), 600.0),
        servers=[k.strip() for k in args.servers.split(",") if k.strip()],
        server_cpus=server_cpus,
        client_cpus=client_cpus,
        rss_conns=[1000] if quick else [1000, 10000],
        fanout_conns=200 if quick else 1000,
        open_duration=2.0 if quick else 10.0,
    )
    raise_nofile()
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.time()
    t0 = time.monotonic()
    info = machine_info()
    log(
        f"machine: {info['cpus']} x {info['cpu']}, load average {info['loadavg_at_start']:.2f}; "
        f"server CPUs {sorted(server_cpus) if server_cpus else 'any'}, client CPUs "
        f"{sorted(client_cpus) if client_cpus else 'any'}"
    )
    rows = run_suite(s, only, log)
    elapsed = time.monotonic() - t0
    command = "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    print()
    print(render(rows))
    print(
        f"\n{command.strip()}  ({elapsed:.0f} s, repeat {s.repeat}, load average at start "
        f"{info['loadavg_at_start']:.2f}, now {loadavg():.2f})"
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(
            {
                "command": command,
                "started": started,
                "elapsed_s": elapsed,
                "machine": info,
                "settings": {
                    **s.__dict__,
                    "server_cpus": sorted(server_cpus or []),
                    "client_cpus": sorted(client_cpus or []),
                },
                "rows": [r.__dict__ for r in rows],
            },
            f,
            indent=1,
            default=str,
        )
    print(f"JSON: {args.json}")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(
                f"Command: `{command.strip()}` ({elapsed:.0f} s)\n\n{render(rows, markdown=True)}\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
