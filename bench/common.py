"""Small helpers shared by the load generator, the scenario suite and the baseline servers.

The safety rule of this directory lives here: `check_loopback` is the one gate every network
target passes through, and it only lets 127.0.0.0/8, ::1 and the name "localhost" through.
"""

from __future__ import annotations

import ipaddress
import math
import os
import resource
import socket
import statistics
import time
from typing import Any
from urllib.parse import urlsplit

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class NotLoopback(ValueError):
    """A benchmark target outside the loopback interface was requested."""


def check_loopback(host: str) -> str:
    """Return an address literal to connect to, or raise NotLoopback.

    Only literal loopback addresses and the exact name "localhost" pass; "localhost" is mapped
    to 127.0.0.1 here so that name resolution can never send traffic elsewhere.
    """
    name = host.strip().strip("[]")
    if name.lower() == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        raise NotLoopback(
            f"{host!r} is not a loopback address (use 127.0.0.1, ::1 or localhost)"
        ) from None
    if address.version == 4 and address in ipaddress.ip_network("127.0.0.0/8"):
        return str(address)
    if address.version == 6 and address == ipaddress.ip_address("::1"):
        return str(address)
    raise NotLoopback(
        f"{host!r} is not a loopback address; this tool only loads 127.0.0.0/8 or ::1"
    )


def parse_ws_url(url: str) -> tuple[str, int, str]:
    """(host, port, path) of a ws:// URL whose host passes `check_loopback`."""
    parts = urlsplit(url)
    if parts.scheme != "ws":
        raise ValueError(f"only ws:// URLs are supported, got {url!r}")
    if parts.hostname is None:
        raise ValueError(f"no host in {url!r}")
    host = check_loopback(parts.hostname)
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return host, port, path


def ws_url(host: str, port: int, path: str = "/ws") -> str:
    host = check_loopback(host)
    shown = f"[{host}]" if ":" in host else host
    return f"ws://{shown}:{port}{path}"


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((check_loopback(host), 0))
        return s.getsockname()[1]


def raise_nofile(wanted: int | None = None) -> int:
    """Raise this process's soft RLIMIT_NOFILE (to the hard limit, or `wanted` if lower)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None or hard == resource.RLIM_INFINITY else min(hard, wanted)
    if wanted is not None and hard == resource.RLIM_INFINITY:
        target = wanted
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def parse_cpus(text: str | None) -> set[int] | None:
    """ "0", "1,3" or "2-3" -> a CPU set; None or "" -> None (no pinning)."""
    if not text:
        return None
    cpus: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.update(range(int(lo), int(hi) + 1))
        elif part:
            cpus.add(int(part))
    available = os.sched_getaffinity(0) | set(range(os.cpu_count() or 1))
    unknown = cpus - available
    if unknown:
        raise ValueError(f"CPU(s) {sorted(unknown)} do not exist here (have {sorted(available)})")
    return cpus


def pin_process(pid: int, cpus: set[int]) -> None:
    """Pin every thread of `pid` (sched_setaffinity acts on one thread at a time)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:
            pass


# ---- /proc readers -------------------------------------------------------------------------


def read_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all threads, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    # Fields 14 and 15 of stat(5) are utime and stime; here they are indexes 11 and 12.
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def read_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM (bytes), thread count and context switches from /proc/PID/status."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            key, _, value = line.partition(b":")
            k = key.decode()
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(value.split()[0]) * 1024
            elif k in ("Threads", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                out[k] = int(value.split()[0])
    return out


def read_ctxt_switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches summed over every thread of `pid`
    (/proc/PID/status counts the main thread only)."""
    vol = invol = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tids = [str(pid)]
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"voluntary_ctxt_switches"):
                        vol += int(line.split()[1])
                    elif line.startswith(b"nonvoluntary_ctxt_switches"):
                        invol += int(line.split()[1])
        except OSError:
            continue  # a thread that ended meanwhile
    return vol, invol


def count_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def read_machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return (total - idle) / CLK_TCK, total / CLK_TCK


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class CpuWindow:
    """CPU and context-switch deltas of one process between `start()` and `stop()`, and how
    busy the rest of the machine was meanwhile (the noise indicator of every result)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.t0 = self.t1 = 0.0
        self.cpu0 = self.cpu1 = (0.0, 0.0)
        self.machine0 = self.machine1 = (0.0, 0.0)
        self.st0: dict[str, int] = {}
        self.st1: dict[str, int] = {}

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.cpu0 = read_cpu(self.pid)
        self.st0 = read_status(self.pid)
        self.st0["voluntary_ctxt_switches"], self.st0["nonvoluntary_ctxt_switches"] = (
            read_ctxt_switches(self.pid)
        )
        self.machine0 = read_machine_cpu()

    def stop(self) -> None:
        self.t1 = time.monotonic()
        self.cpu1 = read_cpu(self.pid)
        self.st1 = read_status(self.pid)
        self.st1["voluntary_ctxt_switches"], self.st1["nonvoluntary_ctxt_switches"] = (
            read_ctxt_switches(self.pid)
        )
        self.machine1 = read_machine_cpu()

    def result(self) -> dict[str, Any]:
        user = self.cpu1[0] - self.cpu0[0]
        system = self.cpu1[1] - self.cpu0[1]
        wall = self.t1 - self.t0
        return {
            "wall_s": wall,
            "user_s": user,
            "sys_s": system,
            "cpu_s": user + system,
            "cpu_pct": 100.0 * (user + system) / wall if wall > 0 else 0.0,
            "voluntary_ctxt_switches": self.st1.get("voluntary_ctxt_switches", 0)
            - self.st0.get("voluntary_ctxt_switches", 0),
            "nonvoluntary_ctxt_switches": self.st1.get("nonvoluntary_ctxt_switches", 0)
            - self.st0.get("nonvoluntary_ctxt_switches", 0),
            "rss_bytes": self.st1.get("VmRSS", 0),
            "machine_busy_s": self.machine1[0] - self.machine0[0],
            "loadavg_1m": loadavg(),
        }


# ---- numbers -------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-q * len(sorted_values) // 100)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def median_of(values: list[Any]) -> Any:
    numbers = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    return statistics.median(numbers) if numbers else None


def mint_jwt(secret: str, role: str = "viewer", user: str = "bench", ttl: float = 86400.0) -> str:
    import jwt

    now = int(time.time())
    return jwt.encode(
        {"user_id": user, "role": role, "iat": now, "exp": now + int(ttl)},
        secret,
        algorithm="HS256",
    )
