"""Disk use of the file systems holding the service's files (statvfs), against the
`storage.warn_percent` / `storage.block_percent` thresholds (PROTOCOL 5.9, 5.14)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from camera_service.rpc.errors import STORAGE_CRITICAL, RpcError

if TYPE_CHECKING:
    from camera_service.config import StorageSettings


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


def check_storage(path: str, settings: StorageSettings) -> bool:
    """Before writing a new file under `path`: RpcError -1010 when used space is at or above
    `storage.block_percent`; else whether it is at or above `storage.warn_percent` (the
    result's `storage_warning`)."""
    warning, critical = storage_state(path, settings.warn_percent, settings.block_percent)
    if critical:
        raise RpcError(
            STORAGE_CRITICAL,
            data={
                "reason": f"used disk space is at or above {settings.block_percent} %",
                "block_threshold": settings.block_percent,
            },
        )
    return warning
