"""python -m bench.load: load a camera-service (or a baseline) on the loopback interface.

Examples:
  # ours vs both baselines, ping at 100 connections, pinned, median of 3
  python -m bench.load --start-server ours,naive,websockets --conns 100 --repeat 3 \\
      --server-cpu 0 --client-cpu 1
  # a server you started yourself (its PID gives the CPU and RSS numbers)
  python -m bench.load --url ws://127.0.0.1:8002/ws --pid 1234 --jwt-secret S --conns 100
  # open loop: 1000 connections x 10 req/s, 90 % ping and 10 % get_camera_list
  python -m bench.load --start-server ours --conns 1000 --rate 10000 --mix ping:9,get_camera_list:1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from bench.common import NotLoopback, mint_jwt, parse_cpus, parse_ws_url, pin_process, raise_nofile
from bench.load.report import flat, medians, table
from bench.load.runner import LoadOptions, parse_mix, run_load
from bench.servers import KINDS, FakeCameras


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = p.add_argument_group("target (loopback only)")
    target.add_argument(
        "--url", help="ws:// URL of a running server (127.0.0.0/8, ::1 or localhost)"
    )
    target.add_argument("--pid", type=int, help="PID of that server, for CPU and RSS from /proc")
    target.add_argument(
        "--start-server",
        metavar="KIND[,KIND]",
        help="start a fresh server per run with a generated config: ours (default), "
        "naive, websockets",
    )
    target.add_argument("--token", help="JWT for --url (else minted from --jwt-secret)")
    target.add_argument("--jwt-secret", help="secret to mint a viewer JWT for --url")
    target.add_argument(
        "--cameras",
        type=int,
        default=4,
        help="FUSE fake cameras for a started server (default 4; 0 = none)",
    )
    load = p.add_argument_group("load")
    load.add_argument("--conns", type=int, default=100, help="connections (default 100)")
    load.add_argument("--procs", type=int, default=1, help="load-generator processes (default 1)")
    load.add_argument(
        "--depth", type=int, default=1, help="requests in flight per connection, closed loop"
    )
    load.add_argument(
        "--mix", default="ping:1", help="method weights, e.g. ping:9,get_camera_list:1"
    )
    load.add_argument(
        "--rate", type=float, help="open loop at this total req/s (default: closed loop)"
    )
    load.add_argument("--duration", type=float, default=5.0, help="measured seconds (default 5)")
    load.add_argument("--warmup", type=float, default=1.0, help="seconds of load before measuring")
    load.add_argument("--repeat", type=int, default=1, help="runs per server; medians are reported")
    load.add_argument(
        "--connect-concurrency", type=int, default=64, help="connects in progress at once"
    )
    load.add_argument("--max-inflight", type=int, default=64, help="open loop: cap per connection")
    pin = p.add_argument_group("placement")
    pin.add_argument("--server-cpu", help="pin the server to these CPUs, e.g. 0")
    pin.add_argument("--client-cpu", help="pin the load generator to these CPUs, e.g. 1")
    out = p.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write every run and the medians as JSON")
    out.add_argument("--quiet", action="store_true", help="only the final table")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.url and args.start_server:
        print("give only one of --url and --start-server", file=sys.stderr)
        return 2
    if not args.url and not args.start_server:
        args.start_server = "ours"
    try:
        if args.url:
            parse_ws_url(args.url)
        server_cpus = parse_cpus(args.server_cpu)
        client_cpus = parse_cpus(args.client_cpu)
        mix = parse_mix(args.mix)
    except (NotLoopback, ValueError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    if not 1 <= args.repeat <= 50:
        print("--repeat must be 1..50", file=sys.stderr)
        return 2
    raise_nofile()
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    template = LoadOptions(
        url=args.url or "ws://127.0.0.1:1/ws",
        conns=args.conns,
        procs=args.procs,
        depth=args.depth,
        mix=mix,
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        client_cpus=sorted(client_cpus) if client_cpus else None,
        connect_concurrency=args.connect_concurrency,
        max_inflight=args.max_inflight,
    )
    try:
        template.validate()
    except ValueError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2

    runs: dict[str, list[dict[str, Any]]] = {}
    started = time.time()
    if args.url:
        token = args.token or (mint_jwt(args.jwt_secret) if args.jwt_secret else None)
        if token is None:
            print(
                "warning: no --token or --jwt-secret: connections stay unauthenticated",
                file=sys.stderr,
            )
        if args.pid and server_cpus:
            pin_process(args.pid, server_cpus)
        for rep in range(args.repeat):
            template.token = token
            result = run_load(template, server_pid=args.pid)
            result["server_kind"] = "given"
            runs.setdefault("given", []).append(result)
            _progress(args, "given", rep, result)
    else:
        from bench.load.harness import load_once

        kinds = [k.strip() for k in args.start_server.split(",") if k.strip()]
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            print(f"unknown server kind(s) {unknown}; use {', '.join(KINDS)}", file=sys.stderr)
            return 2
        fake = FakeCameras(args.cameras).start() if args.cameras > 0 else None
        if fake is not None and fake.reason and not args.quiet:
            print(f"note: {fake.reason}", file=sys.stderr)
        try:
            for rep in range(args.repeat):  # interleaved, so slow drifts hit every kind alike
                for kind in kinds:
                    result = load_once(
                        kind, template, fake=fake, server_cpus=server_cpus, cameras=args.cameras
                    )
                    runs.setdefault(kind, []).append(result)
                    _progress(args, kind, rep, result)
        finally:
            if fake is not None:
                fake.close()

    summary = {kind: medians(rs) for kind, rs in runs.items()}
    rows = [
        (f"{kind} (median of {len([r for r in rs if not r.get('skipped')])})", summary[kind])
        for kind, rs in runs.items()
    ]
    print()
    print(table(rows, first="server"))
    ratios = cpu_ratios(summary)
    for line in ratios["lines"]:
        print(line)
    for kind, rs in runs.items():
        for r in rs:
            if r.get("skipped"):
                print(f"{kind}: skipped: {r['skipped']}")
            if r.get("warning"):
                print(f"{kind}: warning: {r['warning']}")
            if r.get("server_died"):
                print(f"{kind}: the server died during the run:\n{r['server_died']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "argv": sys.argv,
                    "started": started,
                    "runs": runs,
                    "medians": summary,
                    "cpu_ratios": ratios["values"],
                },
                f,
                indent=1,
                default=str,
            )
        print(f"JSON written to {args.json}")
    return 0


def cpu_ratios(summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Baseline CPU per request divided by ours: how many times cheaper ours is."""
    ours = (summary.get("ours") or {}).get("srv_cpu_us")
    values, lines = {}, []
    for kind, med in summary.items():
        if kind == "ours" or not ours or not med.get("srv_cpu_us"):
            continue
        values[kind] = med["srv_cpu_us"] / ours
        lines.append(
            f"CPU per request: {kind} {med['srv_cpu_us']:.2f} us / ours {ours:.2f} us "
            f"= {values[kind]:.2f}x"
        )
    return {"values": values, "lines": lines}


def _progress(args: argparse.Namespace, kind: str, rep: int, result: dict[str, Any]) -> None:
    if args.quiet:
        return
    if result.get("skipped"):
        print(f"[{kind} #{rep + 1}] skipped: {result['skipped']}", file=sys.stderr)
        return
    f = flat(result)
    print(
        f"[{kind} #{rep + 1}] {f['req_per_s'] or 0:,.0f} req/s, errors {f['errors']}, "
        f"p99 {f['p99_us'] or 0:,.0f} us, server {f['srv_cpu_us'] or 0:.2f} us/req "
        f"(user {f['srv_user_us'] or 0:.2f}, sys {f['srv_sys_us'] or 0:.2f}), "
        f"client {f['cli_us'] or 0:.2f} us/req at {f['cli_cpu_pct'] or 0:.0f}% CPU",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
