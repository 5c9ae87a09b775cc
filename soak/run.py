"""Soak test: the service as a subprocess on FUSE fake cameras, under many clients for minutes.

    python -m soak --minutes 10 --clients 1000        (make soak SOAK_MINUTES=10 SOAK_CLIENTS=1000)

What runs:
  * a FUSE fake-camera mount (camera_service.testing.fakecams) with 4 nodes present at start
    (3 cameras and a UVC metadata node that must never be listed);
  * `python -m camera_service serve --config FILE` on 127.0.0.1 (port picked by the kernel);
  * `--processes` client processes (soak/worker.py) holding `--clients` WebSocket clients in
    total: mixed methods (ping, get_camera_list, get_camera_status, get_metrics for the admin
    clients), one request per client every `--interval` s, reconnect churn (each connection
    lives 2..8 s, then closes and connects again);
  * hot-plug every `--hotplug-every` s on video4..video11: plug (mostly working cameras, also
    EIO, vanishing, hanging and metadata nodes) or unplug.

What is measured: RSS, fd count and threads of the server process, sampled from /proc/PID
every `--sample-every` s. After the warm-up, the median of the first three samples is the
baseline and the median of the last three the end value.

The warm-up ends once every client has connected, at least `--warmup` s (10) have passed since,
and the connection population has turned over `--turnovers` times (10: reconnects since then
>= 10 x clients), or at the latest at half the run. Why turnovers and not only time: with
reconnect churn the server's RSS climbs to a high-water mark over roughly the first ten
turnovers (1000 clients: +25 MB), then stays flat for good (measured: flat over 60,000
further reconnects). That is the allocator settling (the Python-level heap, traced with
tracemalloc, grows by < 1 MB meanwhile), not a leak; a leak keeps growing after it.

The run FAILS (exit 1) when any of these holds:
  * RSS grew by more than `--max-rss-growth-mb` (15 MB) or by more than
    `--max-rss-growth-pct` (20 %) of the baseline;
  * the fd count grew by more than `--max-fd-growth` (20), or once every client has
    disconnected it is not back within that bound of the count before the load started;
  * any client saw a failure: a connect or request that failed, an error other than -1000
    for a camera unplugged between list and status call, a malformed result or notification,
    or two notifications in a row with the same status for one device;
  * the server died, did not exit 0 on SIGTERM, or its final camera list does not match the
    cameras left plugged in.
Exit 2: the soak could not run here (no FUSE). Output: a table and a JSON report (also
written to `--out`/report.json, with the server log and the client logs next to it).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from camera_service.testing import fakecams

HOTPLUG_SLOTS = tuple(range(4, 12))
# kind -> (weight, status once settled: CONNECTED / ERROR / None for "never listed")
HOTPLUG_KINDS = {
    "uvc": (60, "CONNECTED"),
    "fractional": (10, "CONNECTED"),
    "eio": (8, "ERROR"),
    "vanishing": (8, "ERROR"),
    "hanging": (6, "ERROR"),
    "metadata": (8, None),
}
PROBE_TIMEOUT = 1.0
HANG_SECONDS = 2.0  # longer than the probe timeout: the probe is abandoned as ERROR


def spec_for(kind: str, n: int) -> dict:
    if kind == "uvc":
        return fakecams.uvc_camera(card=f"Soak Camera {n}", bus_info=f"usb-0000:00:14.0-{n}")
    if kind == "fractional":
        return fakecams.fractional_camera()
    if kind == "eio":
        return fakecams.querycap_eio_camera()
    if kind == "vanishing":
        return fakecams.vanishing_camera()
    if kind == "hanging":
        return fakecams.hanging_camera(seconds=HANG_SECONDS)
    if kind == "metadata":
        return fakecams.metadata_node()
    raise ValueError(kind)


# ---- the server process ---------------------------------------------------------------------


def proc_usage(pid: int) -> dict[str, float]:
    rss_kb = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return {
        "rss_mb": round(rss_kb / 1024, 2),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": threads,
    }


def write_config(path: Path, dev_dir: str, state_dir: Path, secret: str, clients: int) -> None:
    path.write_text(
        "[server]\n"
        'host = "127.0.0.1"\n'
        "port = 0\n"
        # Room for every client plus connections still closing during reconnect churn.
        f"max_connections = {clients + clients // 5 + 50}\n"
        "shutdown_timeout = 5.0\n"
        "\n[security]\n"
        f'jwt_secret = "{secret}"\n'
        f'state_dir = "{state_dir}"\n'
        "\n[camera]\n"
        f'device_dir = "{dev_dir}"\n'
        f"probe_timeout = {PROBE_TIMEOUT}\n"
        "\n[logging]\n"
        'level = "warning"\n'
    )
    path.chmod(0o600)


def wait_for_port(log_path: Path, proc: subprocess.Popen, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    pattern = re.compile(r"listening on ws://[^\s:]+:(\d+)/")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {proc.returncode} at start-up:\n"
                f"{log_path.read_text(errors='replace')[-3000:]}"
            )
        match = pattern.search(log_path.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        time.sleep(0.05)
    raise RuntimeError(f"server did not report its port within {timeout} s")


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_get(port, "/health/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"/health/ready not 200 within {timeout} s")


async def final_registry(url: str, secret: str) -> tuple[str, dict[str, Any]]:
    import jwt

    from camera_service.client import RpcClient

    now = int(time.time())
    token = jwt.encode(
        {"user_id": "soak-check", "role": "admin", "iat": now, "exp": now + 600},
        secret,
        algorithm="HS256",
    )
    async with await RpcClient.connect(url) as client:
        await client.authenticate(token)
        pong = await client.call("ping", timeout=10)
        listing = await client.call("get_camera_list", timeout=10)
    return pong, listing


# ---- workers ----------------------------------------------------------------------------------


class Worker:
    def __init__(
        self,
        index: int,
        clients: int,
        args: argparse.Namespace,
        url: str,
        secret: str,
        out_dir: Path,
    ) -> None:
        self.index = index
        self.clients = clients
        self.stderr_path = out_dir / f"worker-{index}.log"
        cmd = [
            sys.executable,
            "-m",
            "soak.worker",
            "--url",
            url,
            "--clients",
            str(clients),
            "--index",
            str(index),
            "--interval",
            str(args.interval),
            "--churn-min",
            str(args.churn_min),
            "--churn-max",
            str(args.churn_max),
            "--ramp",
            str(args.ramp),
            "--seed",
            str(args.seed * 1000 + index),
        ]
        env = dict(os.environ, SOAK_JWT_SECRET=secret)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env
            )
        self.lines: list[str] = []
        self.connects = 0  # as last reported by the process
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("CONNECTS "):
                self.connects = int(line.split()[1])
                continue
            self.lines.append(line)
            if line == "READY":
                self.ready.set()

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def result(self, timeout: float) -> dict[str, Any]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return {"index": self.index, "error": f"did not stop within {timeout} s"}
        self._reader.join(5)
        for line in reversed(self.lines):
            if line.startswith("{"):
                return json.loads(line)
        tail = self.stderr_path.read_text(errors="replace")[-1500:]
        return {"index": self.index, "error": f"exited {self.proc.returncode}: {tail}"}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- the run -----------------------------------------------------------------------------------


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.duration = args.minutes * 60.0
        self.warmup = args.warmup
        self.warmup_end: float | None = None
        self.warmup_ended_by = ""
        self.turnovers_at_warmup_end: float | None = None
        self.sample_every = (
            args.sample_every if args.sample_every is not None else max(1.0, self.duration / 120)
        )
        self.out_dir = Path(args.out)
        self.rng = random.Random(args.seed)
        self.samples: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.plugged: dict[int, str] = {}  # slot -> kind currently plugged
        self.hotplugs = 0
        self.hotplug_kinds: dict[str, int] = {}

    # -- hot-plug --

    def hotplug(self, mount: fakecams.FakeV4L2Mount) -> None:
        n = self.rng.choice(HOTPLUG_SLOTS)
        name = f"video{n}"
        if n in self.plugged:
            mount.remove(name)
            del self.plugged[n]
            action = "unplug"
        else:
            kinds = list(HOTPLUG_KINDS)
            kind = self.rng.choices(kinds, weights=[HOTPLUG_KINDS[k][0] for k in kinds])[0]
            mount.add(name, spec_for(kind, n))
            self.plugged[n] = kind
            action = kind
        self.hotplugs += 1
        self.hotplug_kinds[action] = self.hotplug_kinds.get(action, 0) + 1

    def expected_registry(self, dev: str) -> dict[str, str]:
        expected = {
            f"{dev}/video0": "CONNECTED",
            f"{dev}/video2": "CONNECTED",
            f"{dev}/video3": "CONNECTED",
        }
        for n, kind in self.plugged.items():
            status = HOTPLUG_KINDS[kind][1]
            if status is not None:
                expected[f"{dev}/video{n}"] = status
        return dict(sorted(expected.items()))

    # -- main --

    def run(self) -> int:
        reason = fakecams.fuse_unavailable_reason()
        if reason:
            print(f"soak: cannot run: {reason}", file=sys.stderr)
            return 2
        self.out_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="soak-"))
        server = None
        workers: list[Worker] = []
        try:
            mount = fakecams.FakeV4L2Mount.start()
        except fakecams.FuseUnavailable as exc:
            print(f"soak: cannot run: {exc}", file=sys.stderr)
            return 2
        try:
            mount.add("video0", fakecams.uvc_camera(card="Soak Fixed Camera"))
            mount.add("video1", fakecams.metadata_node(card="Soak Fixed Camera"))
            mount.add("video2", fakecams.fractional_camera())
            mount.add("video3", fakecams.stepwise_camera())
            secret = secrets.token_hex(32)
            config = tmp / "config.toml"
            write_config(config, mount.dev_dir, tmp / "var", secret, self.args.clients)
            server_log = self.out_dir / "server.log"
            with open(server_log, "wb") as log:
                server = subprocess.Popen(
                    [sys.executable, "-m", "camera_service", "serve", "--config", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            port = wait_for_port(server_log, server)
            wait_ready(port)
            url = f"ws://127.0.0.1:{port}/ws"
            pid = server.pid
            before_load = proc_usage(pid)
            print(
                f"soak: server pid {pid} on {url}; {self.args.clients} clients in "
                f"{self.args.processes} processes for {self.duration:.0f} s "
                f"(warm-up >= {self.warmup:.0f} s and {self.args.turnovers} turnovers after all "
                f"clients connected, at most until {self.duration / 2:.0f} s); "
                f"logs in {self.out_dir}",
                flush=True,
            )

            shares = [self.args.clients // self.args.processes] * self.args.processes
            for i in range(self.args.clients % self.args.processes):
                shares[i] += 1
            t0 = time.monotonic()
            workers = [
                Worker(i, share, self.args, url, secret, self.out_dir)
                for i, share in enumerate(shares)
                if share
            ]
            ready_at: float | None = None
            next_sample = t0
            next_plug = t0 + self.args.hotplug_every
            while True:
                now = time.monotonic()
                if server.poll() is not None:
                    self.problems.append(f"server died with exit code {server.returncode}")
                    break
                dead = [w.index for w in workers if w.proc.poll() is not None]
                if dead:
                    self.problems.append(f"client processes {dead} ended early")
                    break
                if ready_at is None and all(w.ready.is_set() for w in workers):
                    ready_at = now - t0
                    print(f"soak: all clients connected after {ready_at:.1f} s", flush=True)
                    if ready_at + self.warmup + 4 * self.sample_every > self.duration:
                        self.problems.append(
                            f"run too short: clients connected after {ready_at:.1f} s, "
                            f"warm-up {self.warmup:.0f} s, duration {self.duration:.0f} s"
                        )
                        break
                if now >= next_sample:
                    usage = proc_usage(pid)
                    t = now - t0
                    if self.warmup_end is None and ready_at is not None:
                        self.end_warmup(t, ready_at, workers)
                    self.samples.append(
                        {
                            "t": round(t, 1),
                            "phase": "warm-up" if self.warmup_end is None else "steady",
                            **usage,
                            "hotplugs": self.hotplugs,
                            "connects": sum(w.connects for w in workers),
                        }
                    )
                    next_sample += self.sample_every
                if now - t0 >= self.duration:
                    break
                if now >= next_plug:
                    self.hotplug(mount)
                    next_plug += self.args.hotplug_every
                time.sleep(min(0.1, max(0.0, min(next_sample, next_plug) - time.monotonic())))
                if ready_at is None and now - t0 > 120:
                    self.problems.append("clients not all connected within 120 s")
                    break

            for w in workers:
                w.stop()
            results = [w.result(timeout=60) for w in workers]
            for res in results:
                if "error" in res:
                    self.problems.append(f"client process {res['index']}: {res['error']}")
            idle = None
            if server.poll() is None:
                # The last plug may still be probing (a hanging camera needs PROBE_TIMEOUT).
                expected = self.expected_registry(mount.dev_dir)
                deadline = time.monotonic() + HANG_SECONDS + PROBE_TIMEOUT + 2
                while True:
                    pong, listing = asyncio.run(final_registry(url, secret))
                    got = {c["device"]: c["status"] for c in listing["cameras"]}
                    if (pong == "pong" and got == expected) or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                if pong != "pong" or got != expected:
                    self.problems.append(f"final registry {got} != expected {expected}")
                idle = self.wait_idle(pid, before_load)
            report = self.report(before_load, idle, results, ready_at)
            rc = self.stop_server(server)
            server = None
            if rc != 0:
                self.problems.append(f"server exit code on SIGTERM: {rc}")
            report["server_exit_code"] = rc
            report["problems"] = self.problems
            report["verdict"] = "FAIL" if self.problems else "PASS"
            self.print_report(report)
            (self.out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
            return 1 if self.problems else 0
        finally:
            for w in workers:
                w.kill()
            if server is not None:
                self.stop_server(server)
            mount.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def end_warmup(self, t: float, ready_at: float, workers: list[Worker]) -> None:
        if t < ready_at + self.warmup:
            return
        clients = self.args.clients
        turned = (sum(w.connects for w in workers) - clients) / clients
        if turned >= self.args.turnovers:
            self.warmup_ended_by = f"{self.args.turnovers} turnovers"
        elif t >= self.duration / 2:
            self.warmup_ended_by = "half the run (cap)"
        else:
            return
        self.warmup_end = t
        self.turnovers_at_warmup_end = round(turned, 1)
        print(
            f"soak: warm-up over at {t:.0f} s ({self.warmup_ended_by}; {turned:.1f} turnovers)",
            flush=True,
        )

    def wait_idle(self, pid: int, before_load: dict[str, float]) -> dict[str, float]:
        """Every client is gone: the connection fds must be released (polled up to 10 s)."""
        deadline = time.monotonic() + 10
        while True:
            idle = proc_usage(pid)
            if idle["fds"] - before_load["fds"] <= self.args.max_fd_growth:
                return idle
            if time.monotonic() > deadline:
                self.problems.append(
                    f"fds after every client left: {idle['fds']} (before the load "
                    f"{before_load['fds']}, bound +{self.args.max_fd_growth})"
                )
                return idle
            time.sleep(0.2)

    @staticmethod
    def stop_server(server: subprocess.Popen) -> int:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
                return -9
        return server.returncode

    def report(
        self,
        before_load: dict[str, float],
        idle: dict[str, float] | None,
        results: list[dict[str, Any]],
        ready_at: float | None,
    ) -> dict[str, Any]:
        args = self.args
        steady = [s for s in self.samples if s["phase"] == "steady"]
        growth: dict[str, Any] = {}
        if len(steady) < 4:
            self.problems.append(f"only {len(steady)} samples after the warm-up (need 4)")
        else:
            base_rss = statistics.median(s["rss_mb"] for s in steady[:3])
            end_rss = statistics.median(s["rss_mb"] for s in steady[-3:])
            base_fds = statistics.median(s["fds"] for s in steady[:3])
            end_fds = statistics.median(s["fds"] for s in steady[-3:])
            rss_mb = end_rss - base_rss
            rss_pct = 100.0 * rss_mb / base_rss
            growth = {
                "rss_baseline_mb": base_rss,
                "rss_end_mb": end_rss,
                "rss_growth_mb": round(rss_mb, 2),
                "rss_growth_pct": round(rss_pct, 2),
                "fds_baseline": base_fds,
                "fds_end": end_fds,
                "fd_growth": end_fds - base_fds,
                "rss_peak_mb": max(s["rss_mb"] for s in self.samples),
                "fds_peak": max(s["fds"] for s in self.samples),
            }
            if rss_mb > args.max_rss_growth_mb:
                self.problems.append(
                    f"RSS grew {rss_mb:.1f} MB after the warm-up "
                    f"(bound {args.max_rss_growth_mb} MB)"
                )
            if rss_pct > args.max_rss_growth_pct:
                self.problems.append(
                    f"RSS grew {rss_pct:.1f} % after the warm-up "
                    f"(bound {args.max_rss_growth_pct} %)"
                )
            if end_fds - base_fds > args.max_fd_growth:
                self.problems.append(
                    f"fd count grew by {end_fds - base_fds} after the "
                    f"warm-up (bound {args.max_fd_growth})"
                )
        failures: dict[str, int] = {}
        texts: list[str] = []
        totals = {"requests": 0, "connects": 0, "notifications": 0}
        by_method: dict[str, int] = {}
        expected_errors: dict[str, int] = {}
        p99 = []
        for res in results:
            if "error" in res:
                continue
            for key in totals:
                totals[key] += res["total_requests" if key == "requests" else key]
            for k, v in res["requests"].items():
                by_method[k] = by_method.get(k, 0) + v
            for k, v in res["expected_errors"].items():
                expected_errors[k] = expected_errors.get(k, 0) + v
            for k, v in res["failures"].items():
                failures[k] = failures.get(k, 0) + v
            texts.extend(res["failure_texts"])
            p99.append(res["latency_ms"]["p99"])
            if res["connects"] < res["clients"]:
                self.problems.append(
                    f"client process {res['index']}: only {res['connects']} "
                    f"connects for {res['clients']} clients"
                )
        if failures:
            self.problems.append(f"client failures: {failures}; first: {texts[:5]}")
        if totals["requests"] == 0:
            self.problems.append("no request was answered")
        return {
            "config": {
                "minutes": args.minutes,
                "clients": args.clients,
                "processes": args.processes,
                "interval_s": args.interval,
                "churn_s": [args.churn_min, args.churn_max],
                "hotplug_every_s": args.hotplug_every,
                "warmup": {
                    "min_s_after_all_connected": self.warmup,
                    "turnovers": args.turnovers,
                    "cap_s": self.duration / 2,
                },
                "sample_every_s": self.sample_every,
                "bounds": {
                    "rss_growth_mb": args.max_rss_growth_mb,
                    "rss_growth_pct": args.max_rss_growth_pct,
                    "fd_growth": args.max_fd_growth,
                },
            },
            "clients_connected_after_s": None if ready_at is None else round(ready_at, 1),
            "warmup_ended_at_s": None if self.warmup_end is None else round(self.warmup_end, 1),
            "warmup_ended_by": self.warmup_ended_by,
            "turnovers_at_warmup_end": self.turnovers_at_warmup_end,
            "before_load": before_load,
            "after_clients_left": idle,
            "growth": growth,
            "hotplugs": self.hotplugs,
            "hotplug_actions": self.hotplug_kinds,
            "requests": totals["requests"],
            "requests_by_method": by_method,
            "requests_per_s": round(totals["requests"] / self.duration, 1),
            "expected_errors": expected_errors,
            "connects": totals["connects"],
            "notifications": totals["notifications"],
            "worst_process_p99_ms": max(p99) if p99 else None,
            "client_failures": failures,
            "samples": self.samples,
        }

    def print_report(self, report: dict[str, Any]) -> None:
        rows = self.samples
        step = max(1, math.ceil(len(rows) / 30))
        shown = rows[::step]
        if rows and shown[-1] is not rows[-1]:
            shown.append(rows[-1])
        print(
            f"\n{'t (s)':>7} {'phase':>8} {'RSS MB':>8} {'fds':>6} {'threads':>7} "
            f"{'hotplugs':>8} {'connects':>9}"
        )
        for s in shown:
            print(
                f"{s['t']:>7.1f} {s['phase']:>8} {s['rss_mb']:>8.1f} {s['fds']:>6} "
                f"{s['threads']:>7} {s['hotplugs']:>8} {s['connects']:>9}"
            )
        g = report["growth"]
        if g:
            print(
                f"\nRSS {g['rss_baseline_mb']:.1f} -> {g['rss_end_mb']:.1f} MB "
                f"({g['rss_growth_mb']:+.1f} MB, {g['rss_growth_pct']:+.1f} %; bound "
                f"{self.args.max_rss_growth_mb} MB / {self.args.max_rss_growth_pct} %), "
                f"fds {g['fds_baseline']} -> {g['fds_end']} ({g['fd_growth']:+}; bound "
                f"{self.args.max_fd_growth})"
            )
        print(
            f"requests {report['requests']} ({report['requests_per_s']}/s), connects "
            f"{report['connects']}, notifications {report['notifications']}, hot-plugs "
            f"{report['hotplugs']}, client failures {report['client_failures'] or 0}"
        )
        for problem in self.problems:
            print(f"FAIL: {problem}")
        print(f"verdict: {report['verdict']}\n")
        summary = {k: v for k, v in report.items() if k != "samples"}
        print(json.dumps(summary, indent=2), flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m soak",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="client processes (default: one per 250 clients, at least 2)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="seconds between the requests of one client (jittered)",
    )
    parser.add_argument(
        "--churn-min",
        type=float,
        default=2.0,
        help="shortest connection lifetime (s) before a reconnect",
    )
    parser.add_argument(
        "--churn-max",
        type=float,
        default=8.0,
        help="longest connection lifetime (s) before a reconnect",
    )
    parser.add_argument("--hotplug-every", type=float, default=3.0)
    parser.add_argument(
        "--warmup",
        type=float,
        default=10.0,
        help="minimum warm-up in seconds after every client has connected",
    )
    parser.add_argument(
        "--turnovers",
        type=float,
        default=10.0,
        help="the warm-up lasts until reconnects >= this many times the clients "
        "(at most half the run)",
    )
    parser.add_argument("--sample-every", type=float, default=None)
    parser.add_argument(
        "--ramp",
        type=float,
        default=None,
        help="seconds over which each process opens its first connections",
    )
    parser.add_argument("--max-rss-growth-mb", type=float, default=15.0)
    parser.add_argument("--max-rss-growth-pct", type=float, default=20.0)
    parser.add_argument("--max-fd-growth", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="build/soak", help="report and logs go here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.clients < 1 or args.minutes <= 0:
        print("soak: --clients must be >= 1 and --minutes > 0", file=sys.stderr)
        return 2
    if args.processes is None:
        args.processes = max(2, math.ceil(args.clients / 250))
    args.processes = min(args.processes, args.clients)
    if args.ramp is None:
        args.ramp = max(2.0, args.clients / 200)
    return Soak(args).run()


if __name__ == "__main__":
    sys.exit(main())
