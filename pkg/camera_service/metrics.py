"""Measured numbers for `get_metrics`, `get_status` and the Prometheus endpoint.

Nothing here is a constant: counters come from the dispatcher and the listeners' latency
histogram, memory and CPU from /proc/self.
"""

from __future__ import annotations

import os
import time
from typing import Any

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE_SIZE


def process_cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds of this process."""
    with open("/proc/self/stat", "rb") as f:
        data = f.read()
    # Fields after the parenthesised command name, which may itself contain spaces.
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS


def open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


class CpuMeter:
    """Process CPU percent over the interval since the previous reading."""

    def __init__(self) -> None:
        self._last_wall = time.monotonic()
        self._last_cpu = sum(process_cpu_seconds())

    def percent(self) -> float:
        now = time.monotonic()
        cpu = sum(process_cpu_seconds())
        elapsed = now - self._last_wall
        used = cpu - self._last_cpu
        if elapsed <= 0:
            return 0.0
        self._last_wall, self._last_cpu = now, cpu
        return round(100.0 * used / elapsed, 2)


def histogram_quantile(bounds: tuple[float, ...], counts: list[int], q: float) -> float:
    """Quantile estimated from bucket counts, interpolating inside the bucket (like
    Prometheus' histogram_quantile). `counts` has one more entry than `bounds` (overflow)."""
    total = sum(counts)
    if total == 0:
        return 0.0
    rank = q * total
    seen = 0
    lower = 0.0
    for i, count in enumerate(counts):
        upper = bounds[i] if i < len(bounds) else bounds[-1]
        if count and seen + count >= rank:
            if i >= len(bounds):
                return bounds[-1]  # above the highest bound: report the bound, not a guess
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
        lower = upper
    return bounds[-1]


def request_metrics(services: Any) -> dict[str, Any]:
    """The `get_metrics` result (PROTOCOL 5.5): times in ms, RSS in MB, CPU in percent."""
    dispatcher = services.dispatcher
    latency = services.latency
    counts = latency.counts()
    requests = dispatcher.total_requests
    errors = dispatcher.total_errors
    return {
        "active_connections": len(services.server.table),
        "total_requests": requests,
        "average_response_time": round(latency.total / latency.count * 1000, 4)
        if latency.count
        else 0.0,
        "p50_response_time": round(histogram_quantile(latency.bounds, counts, 0.5) * 1000, 4),
        "p99_response_time": round(histogram_quantile(latency.bounds, counts, 0.99) * 1000, 4),
        "error_rate": round(errors / requests, 6) if requests else 0.0,
        "memory_usage": round(process_rss_bytes() / (1024 * 1024), 2),
        "cpu_usage": services.cpu_meter.percent(),
        "uptime": round(services.uptime(), 3),
    }


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus_text(services: Any) -> bytes:
    """Prometheus text exposition format 0.0.4; no camera names, tokens or configuration."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {value}")

    dispatcher = services.dispatcher
    server = services.server
    metric(
        "camera_service_connections",
        "gauge",
        "Open WebSocket connections.",
        [("", len(server.table))],
    )
    metric(
        "camera_service_connections_accepted_total",
        "counter",
        "WebSocket connections accepted since start.",
        [("", server.table.total_connections)],
    )
    metric(
        "camera_service_connections_refused_total",
        "counter",
        "Upgrades refused with 503 because of the connection limit.",
        [("", server.refused)],
    )

    samples = []
    known = 0
    for name, entry in sorted(dispatcher.methods.items()):
        known += entry.calls
        method = _escape_label(name)
        samples.append((f'{{method="{method}",outcome="ok"}}', entry.calls - entry.errors))
        samples.append((f'{{method="{method}",outcome="error"}}', entry.errors))
    # Requests that never reached a method: bad envelopes and unknown method names.
    samples.append(('{method="",outcome="error"}', dispatcher.total_requests - known))
    metric(
        "camera_service_requests_total",
        "counter",
        "JSON-RPC requests by method and outcome.",
        samples,
    )
    metric(
        "camera_service_errors_total",
        "counter",
        "JSON-RPC error responses by code.",
        [(f'{{code="{code}"}}', count) for code, count in sorted(dispatcher.error_counts.items())],
    )

    latency = services.latency
    cumulative = 0
    buckets = []
    counts = latency.counts()
    for bound, count in zip(latency.bounds, counts):
        cumulative += count
        buckets.append((f'{{le="{bound}"}}', cumulative))
    buckets.append(('{le="+Inf"}', latency.count))
    name = "camera_service_response_time_seconds"
    lines.append(f"# HELP {name} Time from reading a request frame to writing its response.")
    lines.append(f"# TYPE {name} histogram")
    for labels, value in buckets:
        lines.append(f"{name}_bucket{labels} {value}")
    lines.append(f"{name}_sum {latency.total}")
    lines.append(f"{name}_count {latency.count}")

    by_status = {"CONNECTED": 0, "ERROR": 0, "DISCONNECTED": 0}
    if services.monitor is not None:
        for camera in services.monitor.snapshot():
            by_status[camera.status] = by_status.get(camera.status, 0) + 1
    metric(
        "camera_service_cameras",
        "gauge",
        "Cameras by status.",
        [(f'{{status="{status}"}}', count) for status, count in by_status.items()],
    )

    user, system = process_cpu_seconds()
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory of the process.",
        [("", process_rss_bytes())],
    )
    metric(
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time of the process.",
        [("", round(user + system, 2))],
    )
    metric(
        "camera_service_process_cpu_seconds_total",
        "counter",
        "CPU time by mode.",
        [('{mode="user"}', user), ('{mode="system"}', system)],
    )
    metric("process_open_fds", "gauge", "Open file descriptors.", [("", open_fd_count())])
    metric(
        "camera_service_uptime_seconds",
        "gauge",
        "Seconds since the service started.",
        [("", round(services.uptime(), 3))],
    )
    return ("\n".join(lines) + "\n").encode()
