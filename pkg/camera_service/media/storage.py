"""Disk use of the file systems holding the service's files (statvfs), against the
`storage.warn_percent` / `storage.block_percent` thresholds (PROTOCOL 5.9, 5.14)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """Bytes of one file system; `available` is what an unprivileged writer may still use."""

    total: int
    used: int
    available: int

    @property
    def used_percent(self) -> float:
        return 100.0 * self.used / self.total if self.total else 0.0


def disk_usage(path: str) -> DiskUsage:
    """Usage of the file system holding `path`."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    return DiskUsage(total, used, st.f_bavail * st.f_frsize)


def storage_state(path: str, warn_percent: int, block_percent: int) -> tuple[bool, bool]:
    """(warning, critical): used space at or above each threshold."""
    percent = disk_usage(path).used_percent
    return percent >= warn_percent, percent >= block_percent
