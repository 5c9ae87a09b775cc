"""Measured numbers for `get_metrics`, `get_status` and the Prometheus endpoint.

Nothing here is a constant: counters come from the dispatcher and the listeners' latency
histogram, memory and CPU from /proc/self.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from camera_service.core.component import Passive
from camera_service.rpc._jsonrpc import MethodEntry, RequestStats
from camera_service.server._listener import LatencyHistogram

if TYPE_CHECKING:
    from camera_service.cameras.model import Camera
    from camera_service.server.connections import ConnectionTable

# Response-time histogram bounds in seconds (also the Prometheus buckets).
LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_rss_bytes() -> int:
    """Resident memory of this process, from /proc/self/statm."""
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
    """Open file descriptors of this process."""
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


class Metrics(Passive):
    """What the service measures about itself: response times (filled by the listeners),
    request and error counts (filled by the dispatcher), process CPU and uptime."""

    def __init__(self) -> None:
        self.latency = LatencyHistogram(LATENCY_BUCKETS)
        self.requests = RequestStats()
        self.cpu_meter = CpuMeter()
        self.started_monotonic = time.monotonic()

    def uptime(self) -> float:
        """Seconds since the service started."""
        return time.monotonic() - self.started_monotonic


def request_metrics(metrics: Metrics, table: ConnectionTable) -> dict[str, Any]:
    """The `get_metrics` result (PROTOCOL 5.5): times in ms, RSS in MB, CPU in percent."""
    latency = metrics.latency
    counts = latency.counts()
    requests = metrics.requests.total_requests
    errors = metrics.requests.total_errors
    return {
        "active_connections": len(table),
        "total_requests": requests,
        "average_response_time": round(latency.total / latency.count * 1000, 4)
        if latency.count
        else 0.0,
        "p50_response_time": round(histogram_quantile(latency.bounds, counts, 0.5) * 1000, 4),
        "p99_response_time": round(histogram_quantile(latency.bounds, counts, 0.99) * 1000, 4),
        "error_rate": round(errors / requests, 6) if requests else 0.0,
        "memory_usage": round(process_rss_bytes() / (1024 * 1024), 2),
        "cpu_usage": metrics.cpu_meter.percent(),
        "uptime": round(metrics.uptime(), 3),
    }


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus_text(
    metrics: Metrics,
    table: ConnectionTable,
    methods: Iterable[MethodEntry],
    cameras: Iterable[Camera],
) -> bytes:
    """Prometheus text exposition format 0.0.4; no camera names, tokens or configuration."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: Sequence[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {value}")

    requests = metrics.requests
    metric(
        "camera_service_connections",
        "gauge",
        "Open WebSocket connections.",
        [("", len(table))],
    )
    metric(
        "camera_service_connections_accepted_total",
        "counter",
        "WebSocket connections accepted since start.",
        [("", table.total_connections)],
    )
    metric(
        "camera_service_connections_refused_total",
        "counter",
        "Connections refused with 503 because of the connection limit.",
        [("", table.refused)],
    )

    samples = []
    known = 0
    for entry in sorted(methods, key=lambda e: e.name):
        known += entry.calls
        method = _escape_label(entry.name)
        samples.append((f'{{method="{method}",outcome="ok"}}', entry.calls - entry.errors))
        samples.append((f'{{method="{method}",outcome="error"}}', entry.errors))
    # Requests that never reached a method: bad envelopes and unknown method names.
    samples.append(('{method="",outcome="error"}', requests.total_requests - known))
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
        [(f'{{code="{code}"}}', count) for code, count in sorted(requests.error_counts.items())],
    )

    latency = metrics.latency
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
    for camera in cameras:
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
        [("", round(metrics.uptime(), 3))],
    )
    return ("\n".join(lines) + "\n").encode()
