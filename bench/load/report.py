"""Flatten results to the numbers people read, take medians over repeats, print tables."""

from __future__ import annotations

from typing import Any

from bench.common import median_of

# (key, column title, format)
COLUMNS = [
    ("req_per_s", "req/s", "{:,.0f}"),
    ("errors", "errors", "{:.0f}"),
    ("p50_us", "p50 us", "{:,.0f}"),
    ("p90_us", "p90 us", "{:,.0f}"),
    ("p99_us", "p99 us", "{:,.0f}"),
    ("max_us", "max us", "{:,.0f}"),
    ("srv_cpu_us", "srv CPU us/req", "{:.2f}"),
    ("srv_user_us", "user", "{:.2f}"),
    ("srv_sys_us", "sys", "{:.2f}"),
    ("srv_cpu_pct", "srv CPU %", "{:.0f}"),
    ("cli_us", "client us/req", "{:.2f}"),
    ("cli_cpu_pct", "client CPU %", "{:.0f}"),
    ("rss_mb", "srv RSS MB", "{:.1f}"),
    ("others_cpu_pct", "others CPU %", "{:.0f}"),
]


def flat(result: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of one load run (None where not measured)."""
    lat = result.get("latency", {})
    srv = result.get("server", {})
    cli = result.get("client", {})
    con = result.get("connect", {})
    out = {
        "req_per_s": result.get("req_per_s"),
        "errors": result.get("errors"),
        "p50_us": lat.get("p50_us"),
        "p90_us": lat.get("p90_us"),
        "p99_us": lat.get("p99_us"),
        "max_us": lat.get("max_us"),
        "srv_cpu_us": srv.get("cpu_us_per_req"),
        "srv_user_us": srv.get("user_us_per_req"),
        "srv_sys_us": srv.get("sys_us_per_req"),
        "srv_cpu_pct": srv.get("cpu_pct"),
        "cli_us": cli.get("us_per_req"),
        "cli_cpu_pct": cli.get("cpu_pct"),
        "rss_mb": srv["rss_bytes"] / 2**20 if srv.get("rss_bytes") else None,
        "connected": con.get("connected"),
        "connect_p50_ms": (con.get("handshake") or {}).get("p50_us", 0) / 1e3
        if con.get("handshake", {}).get("count")
        else None,
        "connect_p99_ms": (con.get("handshake") or {}).get("p99_us", 0) / 1e3
        if con.get("handshake", {}).get("count")
        else None,
        "establish_s": con.get("establish_wall_s"),
        "others_cpu_pct": (result.get("machine") or {}).get("others_cpu_pct"),
    }
    if "send_lag" in result:
        out["send_lag_p99_us"] = result["send_lag"].get("p99_us")
        out["skipped_sends"] = result.get("skipped_sends")
    return out


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    flats = [flat(r) for r in runs if not r.get("skipped")]
    if not flats:
        return {}
    keys = {k for f in flats for k in f}
    return {k: median_of([f.get(k) for f in flats]) for k in sorted(keys)}


def fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    try:
        return spec.format(value)
    except (ValueError, TypeError):
        return str(value)


def table(rows: list[tuple[str, dict[str, Any]]], columns=COLUMNS, first: str = "run") -> str:
    """A fixed-width text table: one (label, medians) pair a row."""
    head = [first] + [title for _, title, _ in columns]
    body = [
        [label] + [fmt(values.get(key), spec) for key, _, spec in columns] for label, values in rows
    ]
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    lines = [
        "  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(head))
    ]
    lines.append("  ".join("-" * w for w in widths))
    for r in body:
        lines.append(
            "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
        )
    return "\n".join(lines)


def markdown_table(
    rows: list[tuple[str, dict[str, Any]]], columns=COLUMNS, first: str = "run"
) -> str:
    head = [first] + [title for _, title, _ in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for label, values in rows:
        lines.append(
            "| " + " | ".join([label] + [fmt(values.get(k), s) for k, _, s in columns]) + " |"
        )
    return "\n".join(lines)
